//! The compatibility matrix: each level with a compatible and an incompatible history, then
//! each resolution rule on its own.

use super::*;

fn avro(json: &str) -> AvroSchema {
    AvroSchema::parse(json, &[]).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// `anineplus.Anime` with the given fields.
fn anime(fields: &str) -> AvroSchema {
    avro(&format!(
        r#"{{"type":"record","name":"Anime","namespace":"anineplus","fields":[{fields}]}}"#
    ))
}

/// Problems of registering `new` after `history` (oldest first) at `level`.
fn register(level: Compatibility, history: &[&AvroSchema], new: &AvroSchema) -> Vec<String> {
    let versions: Vec<(i32, &AvroSchema)> = history
        .iter()
        .enumerate()
        .map(|(i, s)| (i as i32 + 1, *s))
        .collect();
    let against = if level.is_transitive() {
        &versions[..]
    } else {
        &versions[versions.len() - 1..]
    };
    check(level, new, against)
}

/// Whether a reader of `reader` reads data of `writer`, with the problems for the message.
fn reads(reader: &AvroSchema, writer: &AvroSchema) -> Result<(), Vec<String>> {
    let problems = can_read(reader, writer);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

const ID: &str = r#"{"name":"id","type":"string"}"#;
const RATING_DEFAULT: &str = r#"{"name":"rating","type":"int","default":0}"#;
const RATING: &str = r#"{"name":"rating","type":"int"}"#;

fn with(fields: &[&str]) -> AvroSchema {
    anime(&fields.join(","))
}

#[test]
fn levels_parse_case_insensitively_and_refuse_unknown_names() {
    for level in Compatibility::ALL {
        assert_eq!(level.as_str().parse::<Compatibility>().unwrap(), level);
    }
    assert_eq!(
        "full_transitive".parse::<Compatibility>().unwrap(),
        Compatibility::FullTransitive
    );
    let err = "SIDEWAYS".parse::<Compatibility>().unwrap_err();
    assert_eq!(err.code(), 42203);
    assert_eq!(Compatibility::default(), Compatibility::Backward);
}

#[test]
fn backward() {
    let v1 = with(&[ID]);
    assert!(
        register(
            Compatibility::Backward,
            &[&v1],
            &with(&[ID, RATING_DEFAULT])
        )
        .is_empty()
    );
    let problems = register(Compatibility::Backward, &[&v1], &with(&[ID, RATING]));
    assert_eq!(
        problems,
        vec![
            "reader field 'rating' of record 'anineplus.Anime' has no default and is missing \
             from the writer schema (BACKWARD against version 1): the new schema cannot read its data"
        ]
    );
}

#[test]
fn backward_transitive_checks_every_version() {
    let (v1, v2) = (with(&[ID]), with(&[ID, RATING_DEFAULT]));
    let new = with(&[ID, RATING]);
    // Against the latest only, dropping the default is fine: version 2 always wrote `rating`.
    assert!(register(Compatibility::Backward, &[&v1, &v2], &new).is_empty());
    let problems = register(Compatibility::BackwardTransitive, &[&v1, &v2], &new);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("'rating'")
            && problems[0].contains("BACKWARD_TRANSITIVE against version 1")
    );
    let ok = with(&[
        ID,
        RATING_DEFAULT,
        r#"{"name":"title","type":"string","default":""}"#,
    ]);
    assert!(register(Compatibility::BackwardTransitive, &[&v1, &v2], &ok).is_empty());
}

#[test]
fn forward() {
    let v1 = with(&[ID, RATING_DEFAULT]);
    // Adding a field without default: old readers skip it.
    let added = with(&[ID, RATING_DEFAULT, r#"{"name":"title","type":"string"}"#]);
    assert!(register(Compatibility::Forward, &[&v1], &added).is_empty());
    // Removing a field old readers need without default.
    let v1 = with(&[ID, RATING]);
    let problems = register(Compatibility::Forward, &[&v1], &with(&[ID]));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("reader field 'rating' of record 'anineplus.Anime'"));
    assert!(problems[0].contains("(FORWARD against version 1): it cannot read data"));
}

#[test]
fn forward_transitive_checks_every_version() {
    let (v1, v2) = (with(&[ID, RATING]), with(&[ID, RATING_DEFAULT]));
    let new = with(&[ID]);
    assert!(register(Compatibility::Forward, &[&v1, &v2], &new).is_empty());
    let problems = register(Compatibility::ForwardTransitive, &[&v1, &v2], &new);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("FORWARD_TRANSITIVE against version 1"));
    let v3 = with(&[ID, RATING_DEFAULT, r#"{"name":"x","type":"long"}"#]);
    assert!(register(Compatibility::ForwardTransitive, &[&v1, &v2], &v3).is_empty());
}

#[test]
fn full() {
    let v1 = with(&[ID]);
    assert!(register(Compatibility::Full, &[&v1], &with(&[ID, RATING_DEFAULT])).is_empty());
    // Backward fails (no default); forward alone would pass.
    let problems = register(Compatibility::Full, &[&v1], &with(&[ID, RATING]));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("(FULL against version 1): the new schema cannot read"));
}

#[test]
fn full_transitive_checks_every_version() {
    let (v1, v2) = (with(&[ID]), with(&[ID, RATING_DEFAULT]));
    let new = with(&[ID, RATING]);
    assert!(register(Compatibility::Full, &[&v1, &v2], &new).is_empty());
    let problems = register(Compatibility::FullTransitive, &[&v1, &v2], &new);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("FULL_TRANSITIVE against version 1"));
    let ok = with(&[ID, RATING_DEFAULT]);
    assert!(register(Compatibility::FullTransitive, &[&v1, &v2], &ok).is_empty());
}

#[test]
fn none_accepts_anything() {
    let v1 = with(&[ID]);
    let unrelated = avro(r#"{"type":"array","items":"bytes"}"#);
    assert!(register(Compatibility::None, &[&v1], &unrelated).is_empty());
    assert!(!register(Compatibility::Backward, &[&v1], &unrelated).is_empty());
}

#[test]
fn numeric_promotions_widen_only() {
    let field = |t: &str| anime(&format!(r#"{{"name":"score","type":"{t}"}}"#));
    for (writer, reader) in [
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
    ] {
        assert_eq!(
            reads(&field(reader), &field(writer)),
            Ok(()),
            "{writer}→{reader}"
        );
        let narrowing = reads(&field(writer), &field(reader)).unwrap_err();
        assert_eq!(
            narrowing,
            vec![format!(
                "at 'anineplus.Anime.score': the writer's type '{reader}' cannot be read as the reader's type '{writer}'"
            )]
        );
    }
    assert!(reads(&field("boolean"), &field("int")).is_err());
}

#[test]
fn string_and_bytes_read_each_other() {
    let field = |t: &str| anime(&format!(r#"{{"name":"blob","type":"{t}"}}"#));
    assert_eq!(reads(&field("bytes"), &field("string")), Ok(()));
    assert_eq!(reads(&field("string"), &field("bytes")), Ok(()));
    assert!(reads(&field("string"), &field("int")).is_err());
}

fn status(symbols: &str, default: Option<&str>) -> AvroSchema {
    let default = default
        .map(|d| format!(r#","default":"{d}""#))
        .unwrap_or_default();
    anime(&format!(
        r#"{{"name":"status","type":{{"type":"enum","name":"Status","symbols":[{symbols}]{default}}}}}"#
    ))
}

#[test]
fn enum_symbol_added_is_backward_but_not_forward() {
    let old = status(r#""AIRING","FINISHED""#, None);
    let new = status(r#""AIRING","FINISHED","ANNOUNCED""#, None);
    assert_eq!(reads(&new, &old), Ok(()));
    let problems = reads(&old, &new).unwrap_err();
    assert_eq!(
        problems,
        vec![
            "at 'anineplus.Anime.status': the writer's enum 'anineplus.Status' has symbols \
             [\"ANNOUNCED\"] that the reader's enum lacks, and the reader's enum has no default"
        ]
    );
}

#[test]
fn enum_symbol_removed_needs_a_reader_default() {
    let old = status(r#""AIRING","FINISHED","UNKNOWN""#, None);
    let removed = status(r#""AIRING","UNKNOWN""#, None);
    assert!(reads(&removed, &old).is_err());
    let with_default = status(r#""AIRING","UNKNOWN""#, Some("UNKNOWN"));
    assert_eq!(reads(&with_default, &old), Ok(()));
}

fn title(union: &str) -> AvroSchema {
    anime(&format!(r#"{{"name":"title","type":{union}}}"#))
}

#[test]
fn union_widening_reads_and_narrowing_does_not() {
    let narrow = title(r#"["null","string"]"#);
    let wide = title(r#"["null","string","int"]"#);
    assert_eq!(reads(&wide, &narrow), Ok(()));
    let problems = reads(&narrow, &wide).unwrap_err();
    assert_eq!(
        problems,
        vec![
            "at 'anineplus.Anime.title': the writer's type 'int' is not a branch of the reader's 'union' [null, string]"
        ]
    );
}

#[test]
fn unions_and_single_types() {
    let single = title(r#""string""#);
    let optional = title(r#"["null","string"]"#);
    assert_eq!(reads(&optional, &single), Ok(()));
    let problems = reads(&single, &optional).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].contains("union branch 'null' cannot be read as the reader's 'string'"),
        "{problems:?}"
    );
    // A writer's int fits the reader's union through the long branch (a promotion).
    assert_eq!(
        reads(&title(r#"["null","long"]"#), &title(r#""int""#)),
        Ok(())
    );
}

fn with_studio(studio_fields: &str) -> AvroSchema {
    anime(&format!(
        r#"{ID},{{"name":"studio","type":["null",{{"type":"record","name":"Studio","fields":[{studio_fields}]}}],"default":null}}"#
    ))
}

#[test]
fn nested_record_field_without_default_is_named_with_its_path() {
    let old = with_studio(r#"{"name":"name","type":"string"}"#);
    let new = with_studio(r#"{"name":"name","type":"string"},{"name":"country","type":"string"}"#);
    let problems = reads(&new, &old).unwrap_err();
    assert_eq!(
        problems,
        vec![
            "reader field 'country' of record 'anineplus.Studio' (at 'anineplus.Anime.studio') has \
             no default and is missing from the writer schema"
        ]
    );
    let defaulted = with_studio(
        r#"{"name":"name","type":"string"},{"name":"country","type":"string","default":"JP"}"#,
    );
    assert_eq!(reads(&defaulted, &old), Ok(()));
}

#[test]
fn aliases_rename_fields_and_records() {
    let old = anime(r#"{"name":"score","type":"int"}"#);
    let renamed = anime(r#"{"name":"rating","type":"int","aliases":["score"]}"#);
    assert_eq!(reads(&renamed, &old), Ok(()));
    let without_alias = anime(r#"{"name":"rating","type":"int"}"#);
    assert!(reads(&without_alias, &old).is_err());
    // Avro applies only the reader's aliases: the old reader does not know the new name.
    assert!(reads(&old, &renamed).is_err());

    let show = avro(
        r#"{"type":"record","name":"Show","namespace":"anineplus","aliases":["Anime"],"fields":[{"name":"score","type":"int"}]}"#,
    );
    assert_eq!(reads(&show, &old), Ok(()));
    let show_no_alias = avro(
        r#"{"type":"record","name":"Show","namespace":"anineplus","fields":[{"name":"score","type":"int"}]}"#,
    );
    let problems = reads(&show_no_alias, &old).unwrap_err();
    assert!(
        problems[0].contains(
            "reader's record 'anineplus.Show' does not match the writer's record 'anineplus.Anime'"
        ),
        "{problems:?}"
    );
}

#[test]
fn namespace_changes_keep_the_unqualified_name() {
    let old = anime(ID);
    let moved = avro(&format!(
        r#"{{"type":"record","name":"Anime","namespace":"anineplus.v2","fields":[{ID}]}}"#
    ));
    assert_eq!(reads(&moved, &old), Ok(()));
}

#[test]
fn fixed_size_change_is_incompatible() {
    let hash = |size: usize| {
        anime(&format!(
            r#"{{"name":"hash","type":{{"type":"fixed","name":"Hash","size":{size}}}}}"#
        ))
    };
    assert_eq!(reads(&hash(16), &hash(16)), Ok(()));
    assert_eq!(
        reads(&hash(32), &hash(16)).unwrap_err(),
        vec![
            "at 'anineplus.Anime.hash': fixed 'anineplus.Hash' has size 16 in the writer but 32 in the reader"
        ]
    );
}

#[test]
fn array_items_are_checked_with_their_path() {
    let tags = |t: &str| {
        anime(&format!(
            r#"{{"name":"tags","type":{{"type":"array","items":"{t}"}}}}"#
        ))
    };
    assert_eq!(reads(&tags("long"), &tags("int")), Ok(()));
    assert_eq!(
        reads(&tags("int"), &tags("string")).unwrap_err(),
        vec![
            "at 'anineplus.Anime.tags[]': the writer's type 'string' cannot be read as the reader's type 'int'"
        ]
    );
}

#[test]
fn map_values_are_checked_with_their_path() {
    let counts = |t: &str| {
        anime(&format!(
            r#"{{"name":"counts","type":{{"type":"map","values":"{t}"}}}}"#
        ))
    };
    assert_eq!(reads(&counts("double"), &counts("float")), Ok(()));
    assert_eq!(
        reads(&counts("float"), &counts("double")).unwrap_err(),
        vec![
            "at 'anineplus.Anime.counts{}': the writer's type 'double' cannot be read as the reader's type 'float'"
        ]
    );
    let array = anime(r#"{"name":"counts","type":{"type":"array","items":"float"}}"#);
    assert!(reads(&counts("float"), &array).is_err());
}

#[test]
fn recursive_types_terminate() {
    let list = avro(
        r#"{"type":"record","name":"Node","fields":[{"name":"value","type":"int"},{"name":"next","type":["null","Node"],"default":null}]}"#,
    );
    let wider = avro(
        r#"{"type":"record","name":"Node","fields":[{"name":"value","type":"long"},{"name":"next","type":["null","Node"],"default":null}]}"#,
    );
    assert_eq!(reads(&list, &list), Ok(()));
    assert_eq!(reads(&wider, &list), Ok(()));
    assert!(reads(&list, &wider).is_err());
}

#[test]
fn logical_types_are_checked_as_their_encoding() {
    let at = |t: &str| anime(&format!(r#"{{"name":"at","type":{t}}}"#));
    let millis = at(r#"{"type":"long","logicalType":"timestamp-millis"}"#);
    assert_eq!(reads(&millis, &at(r#""long""#)), Ok(()));
    assert_eq!(reads(&at(r#""long""#), &millis), Ok(()));
    assert!(reads(&millis, &at(r#""string""#)).is_err());
}

#[test]
fn referenced_types_resolve_on_both_sides() {
    let studio = r#"{"type":"record","name":"Studio","namespace":"anineplus","fields":[{"name":"name","type":"string"}]}"#;
    let studio_v2 = r#"{"type":"record","name":"Studio","namespace":"anineplus","fields":[{"name":"name","type":"string"},{"name":"country","type":"string"}]}"#;
    let anime = r#"{"type":"record","name":"Anime","namespace":"anineplus","fields":[{"name":"studio","type":"Studio"}]}"#;
    let old = AvroSchema::parse(anime, &[studio.to_owned()]).unwrap();
    let new = AvroSchema::parse(anime, &[studio_v2.to_owned()]).unwrap();
    assert_eq!(reads(&old, &new), Ok(()));
    let problems = reads(&new, &old).unwrap_err();
    assert!(
        problems[0].contains("'country' of record 'anineplus.Studio'"),
        "{problems:?}"
    );
}

#[test]
fn an_assumption_about_a_recursive_type_is_dropped_when_refuted() {
    // `Tree` is being decided when the walk meets it again under `Wrapper`: the verdict on
    // `Wrapper` assumed `Tree` compatible, and must not survive `Tree` proving incompatible
    // (here through the union of the reader's `alt`, which tries `Wrapper` first).
    let old = avro(
        r#"{"type":"record","name":"Tree","fields":[
            {"name":"w","type":["null",{"type":"record","name":"Wrapper","fields":[{"name":"t","type":["null","Tree"]}]}]},
            {"name":"v","type":"int"},
            {"name":"alt","type":["null","Wrapper"]}]}"#,
    );
    let new = avro(
        r#"{"type":"record","name":"Tree","fields":[
            {"name":"w","type":["null",{"type":"record","name":"Wrapper","fields":[{"name":"t","type":["null","Tree"]}]}]},
            {"name":"v","type":"string"},
            {"name":"alt","type":["null","Wrapper"]}]}"#,
    );
    let problems = can_read(&new, &old);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("'Tree.v'") && p.contains("'int'")),
        "{problems:?}"
    );
    assert_eq!(can_read(&old, &old), Vec::<String>::new());
}
