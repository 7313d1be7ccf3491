//! Retention on the real engine and a real folder: `anineplus-logs retention --dry-run`
//! lists the daily indices and archive folders past their age and deletes nothing; without
//! it, exactly those go, and today's stay.

mod common;

use common::World;
use elasticsearch::http::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_only_what_is_past_its_age_and_a_dry_run_nothing() {
    let t = World::new().await;
    let today = chrono::Utc::now().date_naive();
    let old_index = format!("{}-api-2020.01.01", t.prefix);
    let new_index = format!("{}-api-{}", t.prefix, today.format("%Y.%m.%d"));
    let unrelated = format!("{}-api-v1", t.prefix);
    for index in [&old_index, &new_index, &unrelated] {
        t.call(Method::Put, &format!("/{index}"), None).await;
    }
    let old_folder = t.archive_dir.join("api").join("2020-01-01");
    let new_folder = t
        .archive_dir
        .join("api")
        .join(today.format("%Y-%m-%d").to_string());
    for folder in [&old_folder, &new_folder] {
        std::fs::create_dir_all(folder).unwrap();
        std::fs::write(folder.join("p000-1-1.ndjson.gz"), b"").unwrap();
    }
    let dir = t.archive_dir.display().to_string();
    let args = [
        "retention",
        "--retention-days",
        "30",
        "--dir",
        &dir,
        "--archive-retention-days",
        "30",
    ];

    let (ok, out, err) = t.command(&[&args[..], &["--dry-run"]].concat());
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("would delete index {old_index}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("would delete archive {}", old_folder.display())),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(t.indices().await.len(), 3, "a dry run deletes nothing");
    assert!(old_folder.exists());

    let (ok, out, err) = t.command(&args);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let left: Vec<String> = t.indices().await.into_keys().collect();
    assert_eq!(left, [new_index, unrelated]);
    assert!(!old_folder.exists() && new_folder.exists());

    let (ok, _, err) = t.command(&args);
    assert!(ok && err.contains("nothing is past its retention"), "{err}");
    t.clean().await;
}
