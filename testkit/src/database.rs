//! A PostgreSQL database of a test's own, on the stack's server.

use crate::{Stack, unique};

/// A fresh database on the stack's PostgreSQL, named `<prefix>_<uuid>`. [`TestDatabase::remove`]
/// drops it; when a test panics first, `Drop` does (blocking, on a thread of its own), so no
/// test leaves a database behind. Databases of test processes that were killed (no `Drop`
/// runs then) are swept by the next process using the same prefix.
#[derive(Debug)]
pub struct TestDatabase {
    /// The database's name.
    pub name: String,
    /// A URL of the stack's server pointing at this database.
    pub url: String,
    admin_url: String,
    removed: bool,
}

impl TestDatabase {
    /// Creates the database; panics naming PostgreSQL and `make up` when the server is down.
    pub async fn create(prefix: &str) -> Self {
        let stack = Stack::from_env();
        let admin = stack.postgres().await.unwrap_or_else(|e| panic!("{e}"));
        sweep_leftovers(&admin, prefix).await;
        let name = unique(prefix).replace('-', "_");
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        admin.close().await;
        let url = with_database(&stack.database_url, &name);
        Self {
            name,
            url,
            admin_url: stack.database_url,
            removed: false,
        }
    }

    /// Drops the database, closing what still connects to it.
    pub async fn remove(mut self) {
        self.removed = true;
        drop_database(&self.admin_url, &self.name).await;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(drop_database(&admin_url, &name));
            }
        })
        .join();
    }
}

/// Once per test process and prefix: drops the `<prefix>_*` databases of test processes
/// that were killed (a timeout, SIGKILL, Ctrl-C), i.e. those nobody is connected to that are
/// older than 10 minutes. Best effort: a database's age needs `pg_stat_file` (a superuser,
/// as on the local stack); without it nothing is swept.
async fn sweep_leftovers(admin: &sqlx::PgPool, prefix: &str) {
    static SWEPT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    {
        let mut swept = SWEPT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if swept.iter().any(|p| p == prefix) {
            return;
        }
        swept.push(prefix.to_owned());
    }
    let pattern = format!("{}\\_%", prefix.replace('-', "_").replace('_', "\\_"));
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT d.datname FROM pg_database d \
         WHERE d.datname LIKE $1 \
           AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid) \
           AND (pg_stat_file('base/' || d.oid || '/PG_VERSION')).modification \
               < now() - interval '10 minutes'",
    )
    .bind(pattern)
    .fetch_all(admin)
    .await
    else {
        return;
    };
    for name in names {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(admin)
            .await;
    }
}

/// Drops `name`, again for up to 5 s: servers of a test that panicked may still be
/// reconnecting to it.
async fn drop_database(admin_url: &str, name: &str) {
    let Ok(admin) = sqlx::PgPool::connect(admin_url).await else {
        eprintln!("test database {name} left behind: PostgreSQL unreachable");
        return;
    };
    let mut last = None;
    for _ in 0..20 {
        match sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&admin)
            .await
        {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    if let Some(e) = last {
        eprintln!("test database {name} left behind: {e}");
    }
    admin.close().await;
}

/// `postgres://u:p@h:5432/db?x` with `db` replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let (server, _db) = base.rsplit_once('/').expect("a database URL with a path");
    format!("{server}/{name}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_database() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/db?sslmode=disable", "t_1"),
            "postgres://u:p@h:5432/t_1?sslmode=disable"
        );
    }
}
