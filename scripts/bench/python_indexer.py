#!/usr/bin/env python3
"""The Python peer of the search indexer, for `pipelines/indexer/benches/indexer_vs_python.rs`.

A well-written Python indexer of one partition of the `anime` topic: confluent-kafka
`consume(1000)`, fastavro with each writer schema fetched from the registry and parsed
once, orjson bulk bodies, one bulk request in flight, one process per partition (the bench
starts one per partition). It sends the same writes as `anineplus-indexer` for the same
events: the same version-guarded scripted upserts into the same alias, byte for byte
(`--dump` writes a body without sending it, and the bench compares it with the body the
indexer's own encoder makes of the same events), then the same follow-up per bulk of live
anime documents as the indexer's sink: a refresh of the comments index, a search for the
comments of those anime and a guarded title write for each one holding an older title.
Offsets are stored after their bulk is applied and committed every second, as the runtime
does.

It reads its partition from the start to the end offset it finds at start, prints `first`
when its first record arrives and one JSON line of counts when it is done, then waits for
its standard input to close (so the bench can read its CPU time from `/proc/<pid>/stat`
while it still runs) and exits.
"""

import argparse
import base64
import http.client
import io
import json
import sys
import urllib.parse
import urllib.request

import fastavro
import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

# The painless scripts of `connectors::search_sink` (`Document::replace` as guarded by
# `version_guarded`, and the indexer's title write): the bench's byte comparison fails if
# they drift apart.
REPLACE_KEEPING = (
    "def kept = [:]; "
    "for (k in params.keep) { if (ctx._source.containsKey(k)) { kept[k] = ctx._source[k] } } "
    "ctx._source.clear(); ctx._source.putAll(params.source); ctx._source.putAll(kept)"
)
GUARDED_REPLACE = (
    "if (ctx._source.aggregateVersion != null && ctx._source.aggregateVersion >= params.version) "
    "{ ctx.op = 'none' } else { " + REPLACE_KEEPING + "; ctx._source.aggregateVersion = params.version; "
    "ctx._source.id = params.documentId }"
)
TITLE_ON_COMMENT = (
    "def had = ctx._source.animeTitleVersion; "
    "if (had != null && (had > params.version || (had == params.version "
    "&& params.title.equals(ctx._source.animeTitle)))) "
    "{ ctx.op = 'none' } else { ctx._source.animeTitle = params.title; "
    "ctx._source.animeTitleVersion = params.version }"
)
# The anime index's denormalised fields, kept when a document is replaced.
KEEP = ["episodes", "episodeCount"]
LIVE = ("anime.created", "anime.updated")
PAGE = 1000


class Registry:
    """Writer schemas by id, each fetched and parsed once."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.base = urllib.parse.urlunsplit(
            (parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""), parts.path.rstrip("/"), "", "")
        )
        self.headers = {}
        if parts.username is not None:
            userinfo = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(userinfo.encode()).decode()
        self.schemas = {}
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def schema(self, schema_id):
        parsed = self.schemas.get(schema_id)
        if parsed is None:
            request = urllib.request.Request(f"{self.base}/schemas/ids/{schema_id}", headers=self.headers)
            with self.opener.open(request, timeout=30) as response:
                text = json.loads(response.read())["schema"]
            # Logical types stay their Avro type (epoch ms as an int, UUIDs as strings), as the
            # indexer reads them: no datetime or UUID objects per record.
            parsed = fastavro.parse_schema(plain(json.loads(text)))
            self.schemas[schema_id] = parsed
        return parsed


class Engine:
    """One keep-alive connection to the search engine."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port or 9200, timeout=60)

    def post(self, path, body, content_type="application/json"):
        self.conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = self.conn.getresponse()
        data = response.read()
        if not 200 <= response.status < 300:
            raise RuntimeError(f"POST {path}: status {response.status}: {data[:300]!r}")
        return orjson.loads(data)


def anime_lines(alias, event):
    """The action and source lines of the indexer's write of one `anime` event."""
    doc_id = event["aggregateId"]
    version = event["aggregateVersion"]
    if event["eventType"] in LIVE:
        data = event["data"]
        source = {
            "aggregateVersion": version,
            "alternativeTitles": data.get("alternativeTitles", []),
            "deleted": False,
            "genres": data["genres"],
            "id": doc_id,
            "releaseYear": data["releaseYear"],
            "status": data["status"],
            "synopsis": data["synopsis"],
            "title": data["title"],
            "updatedAt": event["timestamp"],
        }
    else:
        source = {"aggregateVersion": version, "deleted": True, "id": doc_id, "updatedAt": event["timestamp"]}
    action = {"update": {"_id": doc_id, "_index": alias, "retry_on_conflict": 3}}
    body = {
        "script": {
            "lang": "painless",
            "params": {"documentId": doc_id, "keep": KEEP, "source": source, "version": version},
            "source": GUARDED_REPLACE,
        },
        "scripted_upsert": True,
        "upsert": {},
    }
    return orjson.dumps(action) + b"\n" + orjson.dumps(body) + b"\n"


def decode(registry, value):
    if len(value) < 5 or value[0] != 0:
        raise ValueError("not a wire-format record")
    schema = registry.schema(int.from_bytes(value[1:5], "big"))
    return fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None, return_record_name=False)


class Peer:
    def __init__(self, args):
        self.args = args
        self.registry = Registry(args.registry_url)
        self.engine = Engine(args.search_url)
        self.anime = f"{args.index_prefix}-anime"
        self.comments = f"{args.index_prefix}-comments"
        self.counts = {"records": 0, "docs": 0, "already_applied": 0, "failed": 0, "requests": 0, "title_writes": 0}

    def bulk(self, body, n):
        """Sends one bulk body of `n` writes; returns the number applied. Items that failed
        retryably are counted as failed (the bench then fails on its count)."""
        # The indexer's own request: only each item's status and error come back.
        answer = self.engine.post("/_bulk?filter_path=items.*.status,items.*.error", body, "application/x-ndjson")
        self.counts["requests"] += 1
        items = answer["items"]
        if len(items) != n:
            raise RuntimeError(f"bulk answered {len(items)} items for {n}")
        applied = 0
        for item in items:
            (op, result), = item.items()
            status = result["status"]
            if 200 <= status < 300:
                applied += 1
            elif status == 409 and op == "index":
                self.counts["already_applied"] += 1
            else:
                self.counts["failed"] += 1
                if self.counts["failed"] <= 3:
                    print(f"peer: write failed: {result}", file=sys.stderr)
        return applied

    def titles_to_comments(self, titles):
        """The indexer sink's follow-up of live anime documents (`IndexerSink`)."""
        self.engine.post(f"/{self.comments}/_refresh", None)
        ids = sorted(titles)
        writes = []
        after = None
        while True:
            query = {
                "_source": ["animeId", "animeTitleVersion"],
                "query": {"bool": {"filter": [{"terms": {"animeId": ids}}]}},
                "size": PAGE,
                "sort": [{"id": "asc"}],
            }
            if after is not None:
                query["search_after"] = after
            hits = self.engine.post(f"/{self.comments}/_search", orjson.dumps(query))["hits"]["hits"]
            for hit in hits:
                source = hit.get("_source", {})
                title = titles.get(source.get("animeId"))
                had = source.get("animeTitleVersion")
                if title is not None and (had is None or had < title[1]):
                    action = {"update": {"_id": hit["_id"], "_index": self.comments, "retry_on_conflict": 3}}
                    body = {
                        "script": {
                            "lang": "painless",
                            "params": {"documentId": hit["_id"], "title": title[0], "version": title[1]},
                            "source": TITLE_ON_COMMENT,
                        },
                        "scripted_upsert": True,
                        "upsert": {},
                    }
                    writes.append(orjson.dumps(action) + b"\n" + orjson.dumps(body) + b"\n")
            if len(hits) < PAGE:
                break
            after = hits[-1]["sort"]
        if writes:
            self.counts["title_writes"] += self.bulk(b"".join(writes), len(writes))

    def batch(self, messages):
        """The bulk body of a consumed batch, and the titles of its live anime."""
        lines = []
        titles = {}
        for message in messages:
            event = decode(self.registry, message.value())
            lines.append(anime_lines(self.anime, event))
            if event["eventType"] in LIVE:
                had = titles.get(event["aggregateId"])
                if had is None or had[1] < event["aggregateVersion"]:
                    titles[event["aggregateId"]] = (event["data"]["title"], event["aggregateVersion"])
        return b"".join(lines), titles

    def run(self):
        args = self.args
        consumer = Consumer(
            {
                "bootstrap.servers": args.brokers,
                "group.id": args.group,
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 1000,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "session.timeout.ms": 10000,
            }
        )
        tp = TopicPartition(args.topic, args.partition, OFFSET_BEGINNING)
        _, end = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.assign([tp])
        position = 0
        first = True
        dumped = []
        while position < end:
            messages = consumer.consume(args.bulk, timeout=1.0)
            if not messages:
                continue
            good = []
            for message in messages:
                if message.error() is not None:
                    raise KafkaException(message.error())
                good.append(message)
            if not good:
                continue
            if first:
                print("first", flush=True)
                first = False
            if args.dump is not None:
                dumped.extend(good)
                position = good[-1].offset() + 1
                if len(dumped) >= args.limit:
                    break
                continue
            body, titles = self.batch(good)
            self.counts["records"] += len(good)
            self.counts["docs"] += self.bulk(body, len(good))
            if titles:
                self.titles_to_comments(titles)
            position = good[-1].offset() + 1
            consumer.store_offsets(offsets=[TopicPartition(args.topic, args.partition, position)])
        if args.dump is not None:
            body, _ = self.batch(dumped[: args.limit])
            with open(args.dump, "wb") as out:
                out.write(body)
            consumer.close()
            return
        print(json.dumps(self.counts), flush=True)
        # Stay alive (and idle) until the bench has read this process's CPU time.
        sys.stdin.read()
        try:
            consumer.commit(asynchronous=False)
        except KafkaException:
            pass  # nothing stored since the last auto-commit
        consumer.close()


def plain(schema):
    """`schema` without `logicalType` annotations."""
    if isinstance(schema, dict):
        return {k: plain(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [plain(v) for v in schema]
    return schema


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--registry-url", required=True)
    parser.add_argument("--search-url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partition", type=int, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--index-prefix", required=True)
    parser.add_argument("--bulk", type=int, default=1000, help="records per consume() and per bulk request")
    parser.add_argument("--dump", help="write the bulk body of the first --limit records here; send nothing")
    parser.add_argument("--limit", type=int, default=1000)
    Peer(parser.parse_args()).run()


if __name__ == "__main__":
    main()
