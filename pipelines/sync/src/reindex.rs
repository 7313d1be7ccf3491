//! Reindex: the next generation `<alias>-v<N+1>` built from PostgreSQL, caught up, the alias
//! switched in one request, then a repair pass through the alias.

use anineplus_connectors::search_sink::Document;
use anineplus_indexer::indices::Index;
use elasticsearch::http::Method;
use serde_json::{Value, json};

use crate::{Error, PROGRESS_EVERY, Result, SearchSync};

impl SearchSync {
    /// Loads every row of `index` into the concrete index `new`; returns the count.
    pub(crate) async fn load(&self, index: Index, new: &str) -> Result<usize> {
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {}", Self::table(index)))
                .fetch_one(&self.pool)
                .await?;
        let (mut loaded, mut failed, mut after) = (0, Vec::new(), None);
        loop {
            let page = self.page(index, after, None).await?;
            let n = page.len();
            after = Self::next_after(&page)?.or(after);
            let mut docs: Vec<Document> = page.into_iter().flat_map(|(_, _, d)| d).collect();
            self.retarget(index, &mut docs, new);
            let r = self.write(new, &docs).await?;
            let before = loaded / PROGRESS_EVERY;
            loaded += r.written;
            failed.extend(r.failed);
            if loaded / PROGRESS_EVERY > before || n < self.batch {
                self.note(format_args!("  {new}: {loaded}/{total} documents"));
            }
            if n < self.batch {
                break;
            }
        }
        if !failed.is_empty() {
            return Err(Error::Refused {
                target: new.to_owned(),
                failed,
            });
        }
        Ok(loaded)
    }

    /// Rebuilds `index` into the next generation and switches the alias to it; the old
    /// generation is deleted unless `keep_old`. Returns the new index's name.
    pub async fn reindex(&self, index: Index, keep_old: bool) -> Result<String> {
        Self::check(index)?;
        let alias = index.alias(&self.prefix);
        let old = self.generations(index).await?;
        let generation = old
            .iter()
            .filter_map(|n| n.strip_prefix(&format!("{alias}-v"))?.parse::<u32>().ok())
            .max()
            .ok_or_else(|| Error::NoGeneration(alias.clone()))?;
        let new = format!("{alias}-v{}", generation + 1);
        self.note(format_args!("{alias}: building {new} (alias on {old:?})"));
        // The index template `<alias>` gives it the settings and mappings: this build's,
        // put first, so a reindex is how a new mapping version reaches the alias even
        // before an indexer of this build has started.
        let spec = anineplus_indexer::indices::spec(index, &self.prefix);
        self.call(
            Method::Put,
            &format!("/_index_template/{alias}"),
            Some(&spec.template()),
        )
        .await?;
        self.call(
            Method::Put,
            &format!("/{new}"),
            Some(&json!({ "settings": { "refresh_interval": "-1" } })),
        )
        .await?;
        if let Err(e) = self.load(index, &new).await {
            // Leave nothing half-built behind: the alias still points at the old generation.
            let _ = self.call(Method::Delete, &format!("/{new}"), None).await;
            return Err(Error::Abandoned {
                new,
                source: Box::new(e),
            });
        }
        self.call(
            Method::Put,
            &format!("/{new}/_settings"),
            Some(&json!({ "index": { "refresh_interval": "1s" } })),
        )
        .await?;
        // Catch up with what changed in PostgreSQL during the copy before searches see the
        // new generation (the pass after the switch then has little left to do).
        let drift = self.verify_target(index, &new).await?;
        if !drift.in_sync() {
            self.repair(index, &drift).await?;
        }
        self.refresh(&new).await?;
        let mut actions: Vec<Value> = old
            .iter()
            .map(|o| json!({ "remove": { "index": o, "alias": alias } }))
            .collect();
        actions.push(json!({ "add": { "index": new, "alias": alias, "is_write_index": true } }));
        self.call(
            Method::Post,
            "/_aliases",
            Some(&json!({ "actions": actions })),
        )
        .await?;
        self.note(format_args!(
            "{alias}: switched to {new}; catching up from PostgreSQL"
        ));
        // Events the indexer wrote into the old generation during the copy are in
        // PostgreSQL: a repair pass through the alias brings them over.
        let drift = self.verify(index).await?;
        if !drift.in_sync() {
            self.repair(index, &drift).await?;
        }
        if !keep_old {
            for o in &old {
                self.call(Method::Delete, &format!("/{o}"), None).await?;
                self.note(format_args!("{alias}: deleted {o}"));
            }
        }
        Ok(new)
    }
}
