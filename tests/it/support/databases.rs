//! Throwaway databases: one fresh, empty, randomly named database per test,
//! dropped when the test ends. Servers come from PYGRATE_TEST_POSTGRES_URL and
//! PYGRATE_TEST_MYSQL_URL; an unreachable server skips the test loudly, except
//! under CI=true, where it fails.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mysql::prelude::Queryable;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    Mysql,
}

impl Engine {
    pub const ALL: [Engine; 3] = [Engine::Sqlite, Engine::Postgres, Engine::Mysql];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }
}

enum Client {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
    Mysql(mysql::Conn),
}

enum Cleanup {
    Dir(PathBuf),
    Database { admin_url: String, name: String },
}

pub struct TestDb {
    pub engine: Engine,
    pub url: String,
    client: RefCell<Option<Client>>,
    cleanup: Cleanup,
}

impl TestDb {
    /// A fresh empty database with a random name. None (after a loud
    /// SKIPPED line on stderr) when the server is unreachable, unless CI=true,
    /// where that fails the test.
    pub fn create(engine: Engine) -> Option<TestDb> {
        let name = format!("pygrate_test_{}", random_hex());
        match engine {
            Engine::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join("db.sqlite");
                let client = rusqlite::Connection::open(&path).unwrap();
                Some(TestDb {
                    engine,
                    url: format!("sqlite:///{}", path.display()),
                    client: RefCell::new(Some(Client::Sqlite(client))),
                    cleanup: Cleanup::Dir(dir),
                })
            }
            Engine::Postgres => {
                let admin_url = server_url("PYGRATE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL);
                let mut admin = match pg_connect(&admin_url) {
                    Ok(admin) => admin,
                    Err(e) => return unreachable(engine, &admin_url, &e.to_string()),
                };
                admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
                let url = with_database(&admin_url, &name);
                let client = pg_connect(&url).unwrap();
                Some(TestDb {
                    engine,
                    url,
                    client: RefCell::new(Some(Client::Postgres(client))),
                    cleanup: Cleanup::Database { admin_url, name },
                })
            }
            Engine::Mysql => {
                let admin_url = server_url("PYGRATE_TEST_MYSQL_URL", DEFAULT_MYSQL_URL);
                let mut admin = match mysql_connect(&admin_url, None) {
                    Ok(admin) => admin,
                    Err(e) => return unreachable(engine, &admin_url, &e.to_string()),
                };
                admin.query_drop(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4")).unwrap();
                let client = mysql_connect(&admin_url, Some(&name)).unwrap();
                Some(TestDb {
                    engine,
                    url: with_database(&admin_url, &name),
                    client: RefCell::new(Some(Client::Mysql(client))),
                    cleanup: Cleanup::Database { admin_url, name },
                })
            }
        }
    }

    /// Runs SQL (several statements allowed); panics on error.
    #[track_caller]
    pub fn execute(&self, sql: &str) {
        let mut client = self.client.borrow_mut();
        let result = match client.as_mut().unwrap() {
            Client::Sqlite(c) => c.execute_batch(sql).map_err(|e| e.to_string()),
            Client::Postgres(c) => c.batch_execute(sql).map_err(|e| format!("{e:?}")),
            Client::Mysql(c) => c.query_drop(sql).map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            panic!("{}: {sql}: {e}", self.engine.name());
        }
    }

    /// The first column of the first row.
    #[track_caller]
    pub fn query_i64(&self, sql: &str) -> i64 {
        let rows = self.query_strings(sql);
        let value = rows.first().and_then(|r| r.first()).cloned().flatten();
        let value = value.unwrap_or_else(|| panic!("{}: {sql}: no value", self.engine.name()));
        value.parse().unwrap_or_else(|e| panic!("{}: {sql}: {value:?} is not an integer: {e}", self.engine.name()))
    }

    /// All rows, every column as text (cast in SQL where the engine needs it).
    #[track_caller]
    pub fn query_strings(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let mut client = self.client.borrow_mut();
        let result = match client.as_mut().unwrap() {
            Client::Sqlite(c) => sqlite_strings(c, sql).map_err(|e| e.to_string()),
            Client::Postgres(c) => c
                .simple_query(sql)
                .map(|messages| {
                    messages
                        .iter()
                        .filter_map(|m| match m {
                            postgres::SimpleQueryMessage::Row(row) => {
                                Some((0..row.len()).map(|i| row.get(i).map(str::to_string)).collect())
                            }
                            _ => None,
                        })
                        .collect()
                })
                .map_err(|e| format!("{e:?}")),
            Client::Mysql(c) => c
                .query_iter(sql)
                .and_then(|result| {
                    result
                        .map(|row| {
                            row.map(|row| {
                                row.unwrap()
                                    .into_iter()
                                    .map(|v| match v {
                                        mysql::Value::NULL => None,
                                        mysql::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                                        other => Some(other.as_sql(true)),
                                    })
                                    .collect()
                            })
                        })
                        .collect()
                })
                .map_err(|e| e.to_string()),
        };
        result.unwrap_or_else(|e| panic!("{}: {sql}: {e}", self.engine.name()))
    }

    /// Whether `table` (or `schema.table` on PostgreSQL) exists.
    pub fn table_exists(&self, table: &str) -> bool {
        let (schema, name) = match table.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, table),
        };
        let quoted = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let sql = match self.engine {
            Engine::Sqlite => {
                format!("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = {}", quoted(name))
            }
            Engine::Postgres => format!(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = {} AND table_name = {}",
                schema.map_or_else(|| "current_schema()".to_string(), quoted),
                quoted(name)
            ),
            Engine::Mysql => format!(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = {} AND table_name = {}",
                schema.map_or_else(|| "DATABASE()".to_string(), quoted),
                quoted(name)
            ),
        };
        self.query_i64(&sql) > 0
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Our own connection goes first, so nothing of ours keeps the database busy.
        drop(self.client.get_mut().take());
        let outcome = match &self.cleanup {
            Cleanup::Dir(dir) => std::fs::remove_dir_all(dir).map_err(|e| e.to_string()),
            Cleanup::Database { admin_url, name } => match self.engine {
                Engine::Postgres => pg_connect(admin_url)
                    .and_then(|mut c| c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .map_err(|e| e.to_string()),
                _ => mysql_connect(admin_url, None)
                    .and_then(|mut c| c.query_drop(format!("DROP DATABASE IF EXISTS {name}")))
                    .map_err(|e| e.to_string()),
            },
        };
        if let Err(e) = outcome {
            eprintln!("warning: could not drop the {} test database {}: {e}", self.engine.name(), self.url);
        }
    }
}

fn server_url(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

fn unreachable(engine: Engine, url: &str, why: &str) -> Option<TestDb> {
    let message = format!("{} not reachable at {}: {why}", engine.name(), pygrate::config::redact(url));
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message} (CI=true: a test database server is required)");
    }
    eprintln!("SKIPPED: {message}");
    None
}

/// Random enough for names that must not collide between parallel tests,
/// test processes and leftovers of killed runs.
fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", hasher.finish())
}

/// `url` with its path (the database) replaced by `/name`.
fn with_database(url: &str, name: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[authority..].find(['/', '?', '#']).map_or(url.len(), |i| authority + i);
    let path_end = url[path_start..].find(['?', '#']).map_or(url.len(), |i| path_start + i);
    format!("{}/{name}{}", &url[..path_start], &url[path_end..])
}

fn pg_connect(url: &str) -> Result<postgres::Client, postgres::Error> {
    let mut config = postgres::Config::from_str(url)?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let tls = native_tls::TlsConnector::builder()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
        .build()
        .unwrap();
    config.connect(postgres_native_tls::MakeTlsConnector::new(tls))
}

fn mysql_connect(url: &str, database: Option<&str>) -> Result<mysql::Conn, mysql::Error> {
    let opts = mysql::OptsBuilder::from_opts(mysql::Opts::from_url(url)?)
        .db_name(database)
        .prefer_socket(false)
        .tcp_connect_timeout(Some(CONNECT_TIMEOUT));
    mysql::Conn::new(opts)
}

fn sqlite_strings(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<Vec<Vec<Option<String>>>> {
    use rusqlite::types::ValueRef;
    let mut stmt = conn.prepare(sql)?;
    let columns = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => None,
                ValueRef::Integer(v) => Some(v.to_string()),
                ValueRef::Real(v) => Some(v.to_string()),
                ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
            });
        }
        out.push(values);
    }
    Ok(out)
}
