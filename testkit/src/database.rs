//! A PostgreSQL database of a test's own, on the stack's server.

use crate::{Stack, unique};

/// A fresh database on the stack's PostgreSQL, named `<prefix>_<uuid>`. [`TestDatabase::remove`]
/// drops it; when a test panics first, `Drop` does (blocking, on a thread of its own), so no
/// test leaves a database behind.
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

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(admin) = sqlx::PgPool::connect(admin_url).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&admin)
            .await;
        admin.close().await;
    }
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
