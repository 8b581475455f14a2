//! The database: one pool and one set of runtime queries for SQLite (embedded default) and
//! PostgreSQL (production), through sqlx's Any driver.
//!
//! `query!` macros would tie each query to one database, so queries are checked by the
//! tests instead, which run every repository test on both. The SQL sticks to what both
//! accept: `$n` placeholders, `ON CONFLICT`, BIGINT numbers and 0/1 flags.

pub mod accounts;
pub mod billing;
pub mod orgs;
pub mod passkeys;
pub mod projects;
pub mod retention;
pub mod siteverify;
pub mod stats;
pub mod support;
pub mod telemetry;
pub mod vat;

mod columns;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// Which database the URL named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:` URLs.
    Sqlite,
    /// `postgres:` or `postgresql:` URLs.
    Postgres,
}

/// A connection pool, the connections write transactions take, the backend behind them,
/// siteverify's group-committing writer, and the projects siteverify found by secret a
/// moment ago.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    /// On SQLite a pool of one connection: SQLite takes one writer at a time, and writers
    /// holding connections of their own would wait for its lock in SQLite's busy handler,
    /// which sleeps up to 100 ms a try. Queued for the one connection instead, they take
    /// turns first come, first served. On PostgreSQL, `pool` itself.
    writer: AnyPool,
    backend: Backend,
    siteverify: siteverify::Writer,
    found_by_secret: projects::FoundBySecret,
}

/// Settings of every SQLite connection (sqlx's, and siteverify's writer's).
const SQLITE_PRAGMAS: [&str; 3] = [
    // sqlx turns foreign keys on by itself; SQLite leaves them off unless asked, and a claim
    // must not outlive its project.
    "PRAGMA foreign_keys = ON",
    // In WAL mode, NORMAL syncs the log at checkpoints, not at every commit: a crash of the
    // process loses nothing, a power loss at most the last commits (the README says what
    // that means for siteverify).
    "PRAGMA synchronous = NORMAL",
    // The commit that fills the log to this many pages copies them into the database and
    // syncs it while every writer waits. SQLite's 1,000 pages (4 MB) made that a stall of
    // ~10 ms every few hundred siteverify groups under load; at 40 MB it comes ten times
    // less often, and pages written again and again in between (indexes, counters) are
    // copied once.
    "PRAGMA wal_autocheckpoint = 10000",
];

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL (use sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    /// An in-memory SQLite database.
    #[error("an in-memory SQLite database is not supported (name a file): {0}")]
    InMemory(String),
    /// The SQLite file's folder could not be created.
    #[error("cannot create the database folder: {0}")]
    Folder(#[from] std::io::Error),
    /// The driver refused.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// Siteverify's writer could not open its SQLite connection.
    #[error("siteverify's writer cannot open the database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Siteverify's writer thread could not be started.
    #[error("cannot start siteverify's writer: {0}")]
    Thread(std::io::Error),
    /// A migration failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Db {
    /// Opens `url` and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(ConnectError::UnsupportedUrl(url.to_owned()));
        };
        if backend == Backend::Sqlite {
            prepare_sqlite_path(url)?;
        }
        let options = |connections| {
            AnyPoolOptions::new()
                .max_connections(connections)
                // While the database is away, a caller (siteverify's backend, a load
                // balancer's probe) gets an error within seconds rather than waiting half a
                // minute.
                .acquire_timeout(std::time::Duration::from_secs(5))
                // Pinging a connection before each use finds a PostgreSQL connection that
                // died while idle; a SQLite connection is a file and a thread in this process,
                // and the ping would cost every siteverify group a hand-off to that thread.
                .test_before_acquire(backend == Backend::Postgres)
                .after_connect(move |connection, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            for pragma in SQLITE_PRAGMAS {
                                sqlx::Executor::execute(&mut *connection, pragma).await?;
                            }
                        }
                        Ok(())
                    })
                })
        };
        let pool = options(8).connect(url).await?;
        let writer = match backend {
            Backend::Sqlite => {
                // WAL lets the dashboard and siteverify read while telemetry is being written.
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&pool)
                    .await?;
                options(1).connect(url).await?
            }
            Backend::Postgres => pool.clone(),
        };
        let siteverify = siteverify::Writer::start(url, writer.clone(), backend)?;
        let db = Self {
            pool,
            writer,
            backend,
            siteverify,
            found_by_secret: projects::FoundBySecret::default(),
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("../migrations/sqlite").run(&self.pool).await,
            Backend::Postgres => {
                sqlx::migrate!("../migrations/postgres")
                    .run(&self.pool)
                    .await
            }
        }
    }

    /// A transaction that will write, on the writers' connection (SQLite) or any of the pool's
    /// (PostgreSQL). On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a transaction that reads first and upgrades later fails at once
    /// with "database is locked" when another writer is active, instead of waiting its turn.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        begin_write(&self.writer, self.backend).await
    }

    /// Siteverify's writes (claims and analytics), committed in groups.
    pub fn siteverify(&self) -> &siteverify::Writer {
        &self.siteverify
    }

    /// Projects found by backend secret a moment ago; forget them after changing one's
    /// secrets, key version or existence.
    pub fn found_by_secret(&self) -> &projects::FoundBySecret {
        &self.found_by_secret
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Every pool, named for `/metrics`: `main` (reads, and every write on PostgreSQL) and,
    /// on SQLite, `writer` (the one connection write transactions queue for).
    pub fn pools(&self) -> Vec<(&'static str, &AnyPool)> {
        match self.backend {
            Backend::Sqlite => vec![("main", &self.pool), ("writer", &self.writer)],
            Backend::Postgres => vec![("main", &self.pool)],
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the database for good: siteverify's writer finishes ([`siteverify::Writer::close`]),
    /// then every connection closes. On SQLite the last connection to the file to close
    /// copies the write-ahead log into it and removes the `-wal` and `-shm` files, so a
    /// stopped server or a finished command leaves one file, which a plain copy backs up whole
    /// (unless another process still has it open).
    pub async fn close(&self) {
        self.siteverify.close().await;
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// [`Db::begin_write`] on a pool.
async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

/// Refuses an in-memory database (each connection would open a database of its own), and
/// creates the file's folder: `sqlite://data/hp.db?mode=rwc` needs `data/` to exist before
/// SQLite can create the file.
fn prepare_sqlite_path(url: &str) -> Result<(), ConnectError> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory") {
        return Err(ConnectError::InMemory(url.to_owned()));
    }
    match std::path::Path::new(path).parent() {
        Some(folder) if !folder.as_os_str().is_empty() => Ok(std::fs::create_dir_all(folder)?),
        _ => Ok(()),
    }
}

/// Whether an error is a unique-constraint violation, on either backend.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Calendar month (UTC) of a Unix-ms timestamp, as `YYYY-MM`: the usage period.
pub fn month_of(at_ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(at_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}", date.year(), u8::from(date.month()))
}

/// The first and the last millisecond of a `YYYY-MM` month (UTC); `None` for anything else.
pub fn month_range_ms(month: &str) -> Option<(i64, i64)> {
    let (year, month) = month.split_once('-')?;
    let year: i32 = year.parse().ok()?;
    let month = time::Month::try_from(month.parse::<u8>().ok()?).ok()?;
    let start = time::Date::from_calendar_date(year, month, 1).ok()?;
    let next = match month {
        time::Month::December => time::Date::from_calendar_date(year + 1, time::Month::January, 1),
        _ => time::Date::from_calendar_date(year, month.next(), 1),
    }
    .ok()?;
    let ms = |date: time::Date| date.midnight().assume_utc().unix_timestamp() * 1000;
    Some((ms(start), ms(next) - 1))
}

/// Fresh databases for the repositories' own tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::Db;

    /// A fresh, migrated SQLite database, and a PostgreSQL one too when
    /// `HUMANPROOF_TEST_POSTGRES_URL` names a server (an admin URL, as for the `tests` crate).
    pub async fn fresh_databases() -> Vec<Db> {
        let path = std::env::temp_dir()
            .join("humanproof-tests")
            .join(format!("{}.db", crate::secrets::new_id()));
        let mut databases = vec![
            Db::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                .await
                .expect("a fresh SQLite database opens and migrates"),
        ];
        match std::env::var("HUMANPROOF_TEST_POSTGRES_URL") {
            Ok(admin_url) => databases.push(fresh_postgres(&admin_url).await),
            Err(_) => eprintln!("HUMANPROOF_TEST_POSTGRES_URL is not set: SQLite only"),
        }
        databases
    }

    async fn fresh_postgres(admin_url: &str) -> Db {
        sqlx::any::install_default_drivers();
        let name = format!("hp_test_{}", crate::secrets::new_id());
        let admin = sqlx::AnyPool::connect(admin_url)
            .await
            .expect("PostgreSQL is reachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("the test database is created");
        admin.close().await;
        let (server, _) = admin_url
            .rsplit_once('/')
            .expect("the URL names a database");
        Db::connect(&format!("{server}/{name}"))
            .await
            .expect("a fresh PostgreSQL database opens and migrates")
    }

    /// Asserts that a read failed on `value` stored in `column`, and says so in its message.
    pub fn assert_unknown<T: std::fmt::Debug>(
        read: Result<T, sqlx::Error>,
        column: &str,
        value: &str,
    ) {
        let message = read
            .expect_err("an unknown stored value fails the read")
            .to_string();
        assert!(
            message.contains(column) && message.contains(value),
            "the error names the column {column} and the value {value:?}: {message}"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    fn tree(name: &str) -> BTreeMap<String, String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../migrations")
            .join(name);
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                (
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&path).unwrap(),
                )
            })
            .collect()
    }

    /// Each connection would open a database of its own, and siteverify's writer another.
    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_refused_by_name() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://hp.db?mode=memory",
        ] {
            let refused = super::Db::connect(url).await.expect_err("refused");
            assert!(
                matches!(refused, super::ConnectError::InMemory(_)),
                "{url}: {refused}"
            );
        }
    }

    /// One portable schema for both databases (see migrations/README.md): a migration written
    /// for one tree and not copied, or edited in one only, fails here.
    #[test]
    fn the_two_migration_trees_are_identical() {
        let (sqlite, postgres) = (tree("sqlite"), tree("postgres"));
        assert_eq!(
            sqlite.keys().collect::<Vec<_>>(),
            postgres.keys().collect::<Vec<_>>()
        );
        for (name, text) in &sqlite {
            assert_eq!(
                text, &postgres[name],
                "migrations/sqlite/{name} and migrations/postgres/{name} differ"
            );
        }
    }
}
