//! The SQL dialect a text is lexed in. It is a property of the text's target
//! database, but lexing and linting only ever need this enum, never a connection.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

impl Dialect {
    /// Backslash escapes inside '…' and "…" literals (MySQL's default sql_mode).
    pub fn backslash_escapes(self) -> bool {
        matches!(self, Dialect::Mysql)
    }

    /// `$$ … $$` and `$tag$ … $tag$` literals.
    pub fn dollar_quotes(self) -> bool {
        matches!(self, Dialect::Postgres)
    }

    /// `--` starts a comment only when a space or control char (or the end
    /// of the text) follows, as in MySQL: there `5--1` is five minus minus one.
    pub fn dash_comments_need_space(self) -> bool {
        matches!(self, Dialect::Mysql)
    }

    /// `# …` line comments.
    pub fn hash_comments(self) -> bool {
        matches!(self, Dialect::Mysql)
    }

    /// `/*! … */` (and MariaDB's `/*M! … */`) holds SQL that the server runs:
    /// mysqldump writes whole statements that way.
    pub fn executable_comments(self) -> bool {
        matches!(self, Dialect::Mysql)
    }

    /// `/* /* … */ */` nests.
    pub fn nested_block_comments(self) -> bool {
        matches!(self, Dialect::Postgres)
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
        }
    }

    pub fn from_name(name: &str) -> Option<Dialect> {
        match name {
            "sqlite" => Some(Dialect::Sqlite),
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "mysql" | "mariadb" => Some(Dialect::Mysql),
            _ => None,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
