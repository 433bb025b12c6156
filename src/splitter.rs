//! Splits a section's text into statements, using the crate's lexer so that
//! delimiters inside literals, quoted identifiers and comments never count.
//!
//! Beyond `;`, it understands two things SQL files commonly contain:
//! - MySQL client `DELIMITER xx` lines, in every dialect;
//! - routine bodies (`CREATE TRIGGER … BEGIN … END;`, PostgreSQL
//!   `BEGIN ATOMIC … END`, MySQL procedures without `DELIMITER`), whose inner
//!   `;` do not end the statement.

use std::ops::Range;

use crate::dialect::Dialect;
use crate::lexer::{LexError, Lexer, Token, TokenKind};

/// One statement, borrowed from the section text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// From the first code token to the last non-whitespace char before the
    /// delimiter: leading comments are left out, inner and trailing ones kept.
    pub sql: &'a str,
    /// Line of the first code token.
    pub line: usize,
    /// Byte range of `sql` in the section text.
    pub span: Range<usize>,
}

impl Statement<'_> {
    /// The transaction-control statement this is (`BEGIN`, `COMMIT`,
    /// `SAVEPOINT`, …), if it is one. Bodies of routines and triggers are
    /// inside their CREATE statement, so their `BEGIN … END` never counts.
    pub fn transaction_control(&self, dialect: Dialect) -> Option<String> {
        self.as_the_server_reads_it(dialect, |s| s.transaction_control_as_written(dialect).map(str::to_string))
    }

    fn transaction_control_as_written(&self, dialect: Dialect) -> Option<&str> {
        let mut words = Lexer::new(self.sql, self.line, dialect).map_while(Result::ok).filter(Token::is_code);
        let first = words.next()?;
        let second = words.next();
        // ABORT is PostgreSQL's ROLLBACK; XA and PREPARE TRANSACTION are
        // two-phase commit (MySQL, PostgreSQL). MariaDB's `BEGIN NOT ATOMIC`
        // opens a compound statement, not a transaction.
        let block = first.is_word("BEGIN") && second.is_some_and(|t| t.is_any_word(&["NOT", "ATOMIC"]));
        let control = !block
            && first.is_any_word(&["BEGIN", "COMMIT", "ROLLBACK", "ABORT", "END", "SAVEPOINT", "RELEASE", "XA"])
            || (first.is_any_word(&["START", "PREPARE"]) && second.is_some_and(|t| t.is_word("TRANSACTION")));
        control.then_some(first.text)
    }

    /// Whether the statement begins or ends a transaction of its own: for
    /// `no-transaction` sections, which may (SPEC 9 records their progress
    /// statement by statement, which cannot happen inside one).
    pub fn transaction_move(&self, dialect: Dialect) -> TransactionMove {
        self.as_the_server_reads_it(dialect, |s| s.transaction_move_as_written(dialect))
    }

    fn transaction_move_as_written(&self, dialect: Dialect) -> TransactionMove {
        let words: Vec<Token<'_>> =
            Lexer::new(self.sql, self.line, dialect).map_while(Result::ok).filter(Token::is_code).take(4).collect();
        let word = |i: usize, w: &str| words.get(i).is_some_and(|t| t.is_word(w));
        let any = |w: &str| words.iter().any(|t| t.is_word(w));
        if word(0, "BEGIN") && !word(1, "NOT") && !word(1, "ATOMIC")
            || word(0, "START") && word(1, "TRANSACTION")
            || word(0, "XA") && word(1, "START")
        {
            return TransactionMove::Begins;
        }
        // SQLite identifiers ignore ASCII case, quoted or not.
        let name = |i: usize| {
            words.get(i).map(|t| t.text.trim_matches(['"', '`', '[', ']']).to_ascii_lowercase()).unwrap_or_default()
        };
        if word(0, "SAVEPOINT") {
            return TransactionMove::Savepoint(name(1));
        }
        if word(0, "RELEASE") {
            return TransactionMove::Release(name(if word(1, "SAVEPOINT") { 2 } else { 1 }));
        }
        // `COMMIT AND CHAIN` begins the next one at once; `ROLLBACK TO` a
        // savepoint stays inside; MySQL's `END` closes a block, not a transaction.
        let chains = any("CHAIN") && !any("NO");
        let ends = word(0, "COMMIT") && !chains
            || word(0, "ROLLBACK") && !any("TO") && !chains
            || word(0, "END") && dialect != Dialect::Mysql
            || word(0, "ABORT")
            || word(0, "PREPARE") && word(1, "TRANSACTION")
            || word(0, "XA") && (word(1, "COMMIT") || word(1, "ROLLBACK"));
        if ends {
            TransactionMove::Ends
        } else {
            TransactionMove::Neither
        }
    }

    /// The index a PostgreSQL `CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT
    /// EXISTS] name ON …` builds, as written (`s."Idx"`); None for any other
    /// statement, and for an index left to PostgreSQL to name.
    pub fn index_built_concurrently(&self, dialect: Dialect) -> Option<String> {
        if dialect != Dialect::Postgres || !mentions(self.sql, "CONCURRENTLY") {
            return None;
        }
        let words: Vec<Token<'_>> =
            Lexer::new(self.sql, self.line, dialect).map_while(Result::ok).filter(Token::is_code).take(12).collect();
        let mut at = 1 + usize::from(words.get(1).is_some_and(|t| t.is_word("UNIQUE")));
        let head = ["INDEX", "CONCURRENTLY"];
        let starts = words.first().is_some_and(|t| t.is_word("CREATE"))
            && head.iter().enumerate().all(|(k, w)| words.get(at + k).is_some_and(|t| t.is_word(w)));
        if !starts {
            return None;
        }
        at += head.len();
        if ["IF", "NOT", "EXISTS"].iter().enumerate().all(|(k, w)| words.get(at + k).is_some_and(|t| t.is_word(w))) {
            at += 3;
        }
        let is_name = |t: &Token<'_>| matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent) && !t.is_word("ON");
        let mut name = String::new();
        while let Some(part) = words.get(at).filter(|t| is_name(t)) {
            name.push_str(part.text);
            match words.get(at + 1) {
                Some(dot) if dot.is_punct('.') => name.push('.'),
                _ => break,
            }
            at += 2;
        }
        (!name.is_empty() && !name.ends_with('.')).then_some(name)
    }

    /// Why pygrate cannot run the statement and keep its guarantees, if it
    /// cannot: it would keep pygrate from writing the state row that records
    /// it, release the migration lock, or make the server misread the text.
    pub fn refused(&self, dialect: Dialect) -> Option<&'static str> {
        self.as_the_server_reads_it(dialect, |s| s.refused_as_written(dialect))
    }

    /// `question` asked of the statement as the server reads it: MySQL runs
    /// the text of its executable comments (`/*!40101 COMMIT */`).
    fn as_the_server_reads_it<T>(&self, dialect: Dialect, question: impl FnOnce(&Statement<'_>) -> T) -> T {
        match executable_comments_as_code(self.sql, dialect) {
            Some(code) => question(&Statement { sql: &code, line: self.line, span: self.span.clone() }),
            None => question(self),
        }
    }

    fn refused_as_written(&self, dialect: Dialect) -> Option<&'static str> {
        // Every statement of every file is asked, by every command: the
        // head is lexed, and the rest only when the statement may need it.
        let code = || Lexer::new(self.sql, self.line, dialect).map_while(Result::ok).filter(Token::is_code);
        let mut head = code();
        let first = head.next()?;
        let second = head.next();
        let rest = || code().skip(1).collect::<Vec<_>>();
        let names = |w: &str| mentions(self.sql, w) && code().any(|t| t.is_word(w));
        if first.is_punct('\\') {
            return Some(
                "a psql/mysql client command (`\\set`, `\\i`, …), not SQL: pygrate sends statements to the server, \
                 which cannot run it; write what it does in SQL, or leave it out",
            );
        }
        // The lock is the session's: these drop it while the run goes on,
        // and a second pygrate would apply the same phase again.
        let unlocks = match dialect {
            Dialect::Postgres => {
                first.is_word("DISCARD") && second.is_some_and(|t| t.is_word("ALL")) || names("pg_advisory_unlock_all")
            }
            Dialect::Mysql => names("RELEASE_ALL_LOCKS"),
            Dialect::Sqlite => false,
        };
        if unlocks {
            return Some(
                "this releases every advisory lock of the session, pygrate's migration lock included, so a second \
                 pygrate could run the same phase meanwhile: leave it out (`DISCARD PLANS`, `DISCARD TEMP` and \
                 releasing your own locks by name are fine)",
            );
        }
        let set = first.is_word("SET").then(rest);
        let encoding_set = match &set {
            Some(words) => sets_a_non_utf8_encoding(words),
            // `SELECT set_config('client_encoding', 'LATIN1', false)`.
            None => {
                dialect == Dialect::Postgres && first.is_word("SELECT") && mentions(self.sql, "client_encoding") && {
                    let words: Vec<Token<'_>> = code().collect();
                    words.windows(3).any(|w| {
                        w[0].kind == TokenKind::String
                            && w[0].text.trim_matches('\'').eq_ignore_ascii_case("client_encoding")
                            && w[1].is_punct(',')
                            && !names_utf8(&w[2])
                    })
                }
            }
        };
        if encoding_set {
            return Some(
                "pygrate sends the file's text, and its own state rows, as UTF-8 (a version file is UTF-8): another \
                 client encoding makes the server misread both; leave it out, or set UTF8",
            );
        }
        if dialect != Dialect::Mysql {
            return None;
        }
        if first.is_word("LOCK") && second.is_some_and(|t| t.is_any_word(&["TABLE", "TABLES"])) {
            return Some(
                "`LOCK TABLES` keeps this session from every table it does not name, pygrate's state table \
                 included, so the statement's progress could not be recorded: leave it out (ALTER TABLE and other \
                 DDL lock what they change), or run this step by hand and settle it with `pygrate resolve`",
            );
        }
        if first.is_word("FLUSH") && rest().windows(2).any(|w| w[0].is_word("READ") && w[1].is_word("LOCK")) {
            return Some(
                "`FLUSH TABLES … WITH READ LOCK` blocks every write, pygrate's state row included, so the \
                 statement's progress could not be recorded: leave it out, or run this step by hand and settle it \
                 with `pygrate resolve`",
            );
        }
        if set.is_some_and(|words| words.iter().any(|t| t.is_word("autocommit"))) {
            return Some(
                "`SET autocommit` changes how pygrate's own state rows commit, so they could be lost with the \
                 section's work: mark the section `no-transaction` and use START TRANSACTION … COMMIT instead",
            );
        }
        None
    }
}

/// On MySQL, `sql` with its executable comments (`/*!40101 SET NAMES x */`,
/// `/*M! … */`) replaced by their text, as the server reads them; None when
/// it has none.
pub fn executable_comments_as_code(sql: &str, dialect: Dialect) -> Option<String> {
    if dialect != Dialect::Mysql || !sql.contains("/*") || !(sql.contains("/*!") || sql.contains("/*M!")) {
        return None;
    }
    let mut code = String::with_capacity(sql.len());
    for token in Lexer::new(sql, 1, dialect).map_while(Result::ok) {
        match token.kind {
            TokenKind::ExecutableComment => {
                let inner =
                    token.text.strip_prefix("/*M!").or_else(|| token.text.strip_prefix("/*!")).unwrap_or_default();
                let inner = inner.strip_suffix("*/").unwrap_or(inner);
                // The version the text needs: five digits (MariaDB: six).
                let digits = inner.bytes().take(6).take_while(u8::is_ascii_digit).count();
                code.push(' ');
                code.push_str(if digits >= 5 { &inner[digits..] } else { inner });
                code.push(' ');
            }
            _ => code.push_str(token.text),
        }
    }
    Some(code)
}

/// After `SET`: a client encoding (`client_encoding`, `NAMES`, `CHARACTER
/// SET`, `character_set_client`, …) set to anything but UTF-8 or the default.
fn sets_a_non_utf8_encoding(words: &[Token<'_>]) -> bool {
    const ENCODINGS: [&str; 5] =
        ["client_encoding", "NAMES", "CHARSET", "character_set_client", "character_set_connection"];
    let names_encoding = |t: &Token<'_>| match t.kind {
        TokenKind::QuotedIdent => {
            ENCODINGS.iter().any(|e| t.text.get(1..t.text.len() - 1).is_some_and(|n| n.eq_ignore_ascii_case(e)))
        }
        _ => t.is_any_word(&ENCODINGS),
    };
    let Some(at) = words.iter().position(|t| names_encoding(t) || t.is_word("CHARACTER")) else {
        return false;
    };
    let skip = if words[at].is_word("CHARACTER") { 2 } else { 1 };
    let value = words.iter().skip(at + skip).find(|t| !(t.is_word("TO") || t.is_punct('=') || t.is_punct(':')));
    // A variable (mysqldump's `SET character_set_client = @saved`) puts
    // back what the session had: pygrate's UTF-8.
    let Some(value) = value.filter(|v| !v.is_punct('@')) else { return false };
    !names_utf8(value)
}

/// Whether a setting's value is UTF-8 or the default (which is pygrate's).
fn names_utf8(value: &Token<'_>) -> bool {
    let text = value.text.trim_matches(['\'', '"', '`']).to_ascii_lowercase().replace(['-', '_'], "");
    matches!(text.as_str(), "utf8" | "utf8mb4" | "utf8mb3" | "unicode" | "default")
}

/// Whether `text` holds `word`, ignoring ASCII case: a byte scan that spares
/// lexing the statements that cannot be about it.
fn mentions(text: &str, word: &str) -> bool {
    let (text, word) = (text.as_bytes(), word.as_bytes());
    let Some((&first, rest)) = word.split_first() else { return true };
    let Some(last_start) = text.len().checked_sub(word.len()) else { return false };
    // One byte compared per position, the rest only where the first matches.
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    text[..=last_start]
        .iter()
        .enumerate()
        .any(|(i, &b)| (b == lower || b == upper) && text[i + 1..i + word.len()].eq_ignore_ascii_case(rest))
}

/// How a statement moves a transaction that a `no-transaction` section
/// manages itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionMove {
    Begins,
    Ends,
    /// `SAVEPOINT name` (lower-cased): on SQLite, outside a transaction,
    /// it begins one.
    Savepoint(String),
    /// `RELEASE [SAVEPOINT] name`: on SQLite, releasing the savepoint that
    /// began the transaction commits it.
    Release(String),
    Neither,
}

/// For each statement, the index of the statement that began the section's
/// own transaction still open after it (None: none is open).
pub fn open_transactions(statements: &[Statement<'_>], dialect: Dialect) -> Vec<Option<usize>> {
    let mut open = None;
    // The savepoint that began the open transaction (SQLite).
    let mut outermost: Option<String> = None;
    statements
        .iter()
        .enumerate()
        .map(|(i, statement)| {
            match statement.transaction_move(dialect) {
                TransactionMove::Begins => open = open.or(Some(i)),
                TransactionMove::Savepoint(name) if open.is_none() && dialect == Dialect::Sqlite => {
                    open = Some(i);
                    outermost = Some(name);
                }
                TransactionMove::Release(name) if outermost.as_ref() == Some(&name) => {
                    open = None;
                    outermost = None;
                }
                TransactionMove::Ends => {
                    open = None;
                    outermost = None;
                }
                TransactionMove::Savepoint(_) | TransactionMove::Release(_) | TransactionMove::Neither => {}
            }
            open
        })
        .collect()
}

/// The statements of `text`, whose first line is line `first_line` of its
/// file. Chunks with no code (only comments, or `;;`) yield no statement; the
/// last statement needs no delimiter. Errors point at the line where an
/// unterminated literal or comment (or a `DELIMITER` with no value) starts.
pub fn split(text: &str, first_line: usize, dialect: Dialect) -> Result<Vec<Statement<'_>>, LexError> {
    Splitter {
        text,
        lexer: Lexer::new(text, first_line, dialect),
        delimiter: None,
        current: Current::default(),
        out: Vec::new(),
    }
    .run()
}

struct Splitter<'a> {
    text: &'a str,
    lexer: Lexer<'a>,
    /// Set by a `DELIMITER` line; `None` is the default `;`.
    delimiter: Option<&'a str>,
    current: Current,
    out: Vec<Statement<'a>>,
}

/// The statement being read.
#[derive(Default)]
struct Current {
    /// Offset and line of the first code token.
    start: Option<(usize, usize)>,
    /// End of the last code or comment token so far.
    end: usize,
    block: BlockTracker,
    /// Open parentheses: PostgreSQL's `CREATE RULE … DO (a; b)` holds `;`
    /// inside them, and psql does not split there either.
    parens: usize,
}

impl<'a> Splitter<'a> {
    fn run(mut self) -> Result<Vec<Statement<'a>>, LexError> {
        loop {
            let pos = self.lexer.offset();
            if let Some(delimiter) = self.delimiter {
                // Checked before lexing: a custom delimiter such as `$$` or `--`
                // would otherwise lex as the start of a literal or comment.
                if self.text.get(pos..).is_some_and(|rest| rest.starts_with(delimiter)) {
                    self.finish()?;
                    self.lexer.seek(pos + delimiter.len());
                    continue;
                }
            }
            let Some(token) = self.lexer.next() else {
                break;
            };
            let token = token?;
            match token.kind {
                TokenKind::Whitespace => {}
                TokenKind::LineComment | TokenKind::BlockComment => {
                    if self.current.start.is_some() {
                        // A line comment may end in spaces; the statement may not.
                        let kept = token.text.trim_end_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
                        self.current.end = token.start + kept.len();
                    }
                }
                _ if self.current.start.is_none() && token.is_word("DELIMITER") && self.at_line_start(&token) => {
                    self.delimiter_line(&token)?;
                }
                _ => match self.delimiter {
                    Some(delimiter) => self.code_with_delimiter(&token, delimiter)?,
                    None => {
                        self.current.block.feed(&token);
                        if self.lexer.dialect() == Dialect::Postgres {
                            if token.is_punct('(') {
                                self.current.parens += 1;
                            } else if token.is_punct(')') {
                                self.current.parens = self.current.parens.saturating_sub(1);
                            }
                        }
                        if token.is_punct(';') && !self.current.block.in_body() && self.current.parens == 0 {
                            self.finish()?;
                        } else {
                            self.code(&token, token.end());
                        }
                    }
                },
            }
        }
        self.finish()?;
        Ok(self.out)
    }

    /// Adds code ending at `end` (which may cut `token` short) to the statement.
    fn code(&mut self, token: &Token<'a>, end: usize) {
        self.current.start.get_or_insert((token.start, token.line));
        self.current.end = end;
    }

    /// With a custom delimiter, the client splits wherever it appears outside
    /// literals and comments, even inside a word (`END$$`), and routine bodies
    /// need no tracking: that is what `DELIMITER` is for.
    fn code_with_delimiter(&mut self, token: &Token<'a>, delimiter: &str) -> Result<(), LexError> {
        // Literals and quoted identifiers protect their contents; a word or
        // number's first char was checked before lexing.
        let searchable = matches!(token.kind, TokenKind::Word | TokenKind::Number);
        let found = token
            .text
            .char_indices()
            .skip(1)
            .map(|(i, _)| token.start + i)
            .find(|&at| searchable && self.text.get(at..).is_some_and(|rest| rest.starts_with(delimiter)));
        match found {
            Some(at) => {
                self.code(token, at);
                self.finish()?;
                self.lexer.seek(at + delimiter.len());
            }
            None => self.code(token, token.end()),
        }
        Ok(())
    }

    /// Only horizontal whitespace before `token` on its line.
    fn at_line_start(&self, token: &Token<'a>) -> bool {
        let before = self.text.get(..token.start).unwrap_or_default();
        before.rsplit('\n').next().unwrap_or_default().bytes().all(|b| b.is_ascii_whitespace() || b == 0x0b)
    }

    /// `DELIMITER xx`: the next run of non-whitespace on the line is the new
    /// delimiter; the rest of the line is lexed as usual (e.g. a comment).
    fn delimiter_line(&mut self, keyword: &Token<'a>) -> Result<(), LexError> {
        let rest = self.text.get(keyword.end()..).unwrap_or_default();
        let value = rest.trim_start_matches([' ', '\t']);
        let value_start = keyword.end() + (rest.len() - value.len());
        let len = value.find(|c: char| c.is_ascii_whitespace() || c == '\x0b').unwrap_or(value.len());
        let value = value.get(..len).unwrap_or_default();
        if value.is_empty() {
            return Err(LexError {
                line: keyword.line,
                message: "DELIMITER must be followed by the new delimiter on the same line".to_string(),
            });
        }
        self.delimiter = (value != ";").then_some(value);
        self.lexer.seek(value_start + len);
        Ok(())
    }

    /// Ends the statement being read. `COPY … FROM STDIN` stops the split:
    /// the rows after it are data for psql's copy protocol, not SQL, and
    /// lexing them as SQL would report the wrong error at the wrong line.
    fn finish(&mut self) -> Result<(), LexError> {
        let current = std::mem::take(&mut self.current);
        if let Some((start, line)) = current.start {
            if let Some(sql) = self.text.get(start..current.end) {
                if uses_copy_protocol(sql, self.lexer.dialect()) {
                    return Err(LexError {
                        line,
                        message: "`COPY … FROM STDIN` / `TO STDOUT` needs psql's copy protocol, which pygrate does \
                                  not speak: load the rows with INSERT … VALUES, or COPY from a file on the \
                                  database server"
                            .to_string(),
                    });
                }
                self.out.push(Statement { sql, line, span: start..current.end });
            }
        }
        Ok(())
    }
}

/// `COPY … FROM STDIN` or `COPY … TO STDOUT`: rows travel outside SQL.
fn uses_copy_protocol(sql: &str, dialect: Dialect) -> bool {
    let mut words = Lexer::new(sql, 1, dialect).map_while(Result::ok).filter(Token::is_code);
    if !words.next().is_some_and(|t| t.is_word("COPY")) {
        return false;
    }
    let mut previous: Option<Token<'_>> = None;
    words.any(|t| {
        let found = previous
            .is_some_and(|p| (p.is_word("FROM") && t.is_word("STDIN")) || (p.is_word("TO") && t.is_word("STDOUT")));
        previous = Some(t);
        found
    })
}

/// Finds routine bodies in which `;` does not end the statement: in a
/// statement starting with `CREATE` whose header (before a `(`, `AS`, or a
/// `TABLE`/`VIEW`/`INDEX` word, so that a column or table named `event` does
/// not count) names a `TRIGGER`, `FUNCTION`, `PROCEDURE` or `EVENT`, a
/// `BEGIN` opens a body. Inside it `BEGIN` and `CASE` open, `END` closes,
/// except MySQL's `END IF`/`END LOOP`/… which close their own (unopened)
/// constructs; `END CASE` closes a `CASE`.
///
/// `begin` and `end` are also common column and parameter names (`NEW.end`,
/// `SET begin = 1`, `f(begin timestamptz)`): where the words around one say
/// it is a name, it opens or closes nothing. A block's `BEGIN` is never
/// inside parentheses, never after `.`, `,` or `SET`, and is followed by
/// a word; a closing `END` follows a statement or an expression. `CASE` is
/// reserved: only after `.` is it a name.
#[derive(Default)]
struct BlockTracker {
    seen_code: bool,
    create: bool,
    in_header: bool,
    routine: bool,
    depth: usize,
    parens: usize,
    /// The previous code token stands where a name goes next (`.`, `(`,
    /// `,`, an operator, `SET`, `WHERE`, …), not a block keyword.
    name_expected: bool,
    /// The previous code token is `.`: this one is part of a name.
    after_dot: bool,
    /// A `BEGIN` whose meaning depends on the next code token.
    pending_begin: bool,
    /// An `END` whose meaning depends on the next code token.
    pending_end: bool,
}

/// Words after which `begin`/`end` can only be a name or a value.
const BEFORE_A_NAME: [&str; 12] = ["SET", "SELECT", "WHERE", "AND", "OR", "ON", "BY", "IS", "LIKE", "IN", "OF", "NOT"];

/// Words after `begin` that make it a name in an expression (`begin IS NULL`).
const AFTER_A_NAME: [&str; 8] = ["FROM", "AS", "IS", "IN", "AND", "OR", "LIKE", "BETWEEN"];

impl BlockTracker {
    fn in_body(&self) -> bool {
        self.depth > 0 || self.pending_begin
    }

    /// Called for every code token of the statement, its delimiter included.
    fn feed(&mut self, token: &Token<'_>) {
        if !std::mem::replace(&mut self.seen_code, true) {
            self.create = token.is_word("CREATE");
            self.in_header = self.create;
            return;
        }
        if !self.create {
            return;
        }
        if self.depth == 0 && self.in_header {
            if token.is_punct('(') || token.is_any_word(&["AS", "TABLE", "VIEW", "INDEX"]) {
                self.in_header = false;
            } else if token.is_any_word(&["TRIGGER", "FUNCTION", "PROCEDURE", "EVENT"]) {
                self.routine = true;
            }
        }
        // Only a routine has a body: other statements end here, cheaply.
        if !self.routine {
            return;
        }
        let after_name_slot = std::mem::replace(
            &mut self.name_expected,
            match token.kind {
                TokenKind::Punct => !token.is_punct(')') && !token.is_punct(';') && !token.is_punct(':'),
                _ => token.is_any_word(&BEFORE_A_NAME),
            },
        );
        let after_dot = std::mem::replace(&mut self.after_dot, token.is_punct('.'));
        if token.is_punct('(') {
            self.parens += 1;
        } else if token.is_punct(')') {
            self.parens = self.parens.saturating_sub(1);
        }
        if std::mem::take(&mut self.pending_begin)
            && matches!(token.kind, TokenKind::Word | TokenKind::ExecutableComment)
            && !token.is_any_word(&AFTER_A_NAME)
        {
            self.depth += 1;
        }
        if std::mem::take(&mut self.pending_end) {
            if token.is_any_word(&["IF", "LOOP", "WHILE", "REPEAT", "FOR"]) {
                return;
            }
            self.depth = self.depth.saturating_sub(1);
            if token.is_word("CASE") {
                return;
            }
        }
        if token.is_word("BEGIN") {
            self.pending_begin = self.parens == 0 && !after_name_slot;
        } else if self.depth > 0 && token.is_word("CASE") && !after_dot {
            self.depth += 1;
        } else if self.depth > 0 && token.is_word("END") && !after_name_slot {
            self.pending_end = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DIALECTS: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql];

    /// (sql, line) of each statement, with sections starting at line 10.
    fn stmts(text: &str, dialect: Dialect) -> Vec<(&str, usize)> {
        let statements = split(text, 10, dialect).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        for s in &statements {
            assert_eq!(Some(s.sql), text.get(s.span.clone()));
        }
        statements.into_iter().map(|s| (s.sql, s.line)).collect()
    }

    fn all_dialects(text: &str, expected: &[(&str, usize)]) {
        for dialect in DIALECTS {
            assert_eq!(stmts(text, dialect), expected, "{dialect}");
        }
    }

    #[test]
    fn splits_on_semicolons_with_lines_and_spans() {
        let text = "CREATE TABLE t (a int);\n\nINSERT INTO t\n  VALUES (1);  SELECT 1";
        all_dialects(text, &[("CREATE TABLE t (a int)", 10), ("INSERT INTO t\n  VALUES (1)", 12), ("SELECT 1", 13)]);
        let statements = split(text, 1, Dialect::Sqlite).unwrap_or_default();
        assert_eq!(statements.iter().map(|s| s.span.clone()).collect::<Vec<_>>(), vec![0..22, 25..51, 54..62]);
    }

    /// The rows after `COPY … FROM STDIN` are psql's data, not SQL: the split
    /// stops at the COPY with an error naming its line, before lexing them.
    #[test]
    fn copy_from_stdin_is_refused_at_its_line() {
        let text = "CREATE TABLE e (a int, b text);\ncopy e (a, b) FROM stdin;\n1\tit's\n\\.\n";
        for dialect in DIALECTS {
            let e = split(text, 10, dialect).err().unwrap_or_else(|| panic!("{dialect:?}: split"));
            assert_eq!(e.line, 11, "{dialect:?}");
            assert!(
                e.message.contains("`COPY … FROM STDIN` / `TO STDOUT` needs psql's copy protocol"),
                "{}",
                e.message
            );
        }
        assert!(split("COPY (SELECT 1) TO STDOUT;", 1, Dialect::Postgres).is_err());
        assert!(split("COPY e FROM '/srv/e.csv';\nSELECT 'stdin';", 1, Dialect::Postgres).is_ok());
    }

    /// MySQL's `--` comment needs a space after it: `5--1` is arithmetic, and
    /// the `;` after it ends the statement.
    #[test]
    fn mysql_double_dash_without_space_is_code() {
        assert_eq!(stmts("--;", Dialect::Mysql), vec![("--", 10)], "found by the property test");
        let text = "INSERT INTO m VALUES (5--1);\nINSERT INTO n VALUES (7);";
        assert_eq!(
            stmts(text, Dialect::Mysql),
            vec![("INSERT INTO m VALUES (5--1)", 10), ("INSERT INTO n VALUES (7)", 11)]
        );
        assert_eq!(stmts(text, Dialect::Postgres).len(), 1, "PostgreSQL reads `--1);` as a comment");
    }

    /// MySQL runs the text of `/*! … */` and `/*M! … */`: mysqldump writes
    /// whole statements that way, and they were dropped as comments while
    /// the phase was recorded applied. Elsewhere they are comments.
    #[test]
    fn mysql_executable_comments_are_statements() {
        let text = "/*!40101 SET @m = @@sql_mode */;\n/*M!100100 SET @x = 1; */;\n/* plain */;\nCREATE TABLE p (id INT) /*!50100 PARTITION BY HASH(id) */;";
        assert_eq!(
            stmts(text, Dialect::Mysql),
            vec![
                ("/*!40101 SET @m = @@sql_mode */", 10),
                ("/*M!100100 SET @x = 1; */", 11),
                ("CREATE TABLE p (id INT) /*!50100 PARTITION BY HASH(id) */", 13)
            ]
        );
        assert_eq!(
            stmts(text, Dialect::Postgres),
            vec![("CREATE TABLE p (id INT) /*!50100 PARTITION BY HASH(id) */", 13)]
        );
        let trigger = "DELIMITER ;;\n/*!50003 CREATE*/ /*!50003 TRIGGER g BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.v = 1; END */;;\nDELIMITER ;\nINSERT INTO t (id) VALUES (1);";
        assert_eq!(
            stmts(trigger, Dialect::Mysql),
            vec![
                (
                    "/*!50003 CREATE*/ /*!50003 TRIGGER g BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.v = 1; END */",
                    11
                ),
                ("INSERT INTO t (id) VALUES (1)", 13)
            ]
        );
    }

    /// A PostgreSQL rule's actions sit in parentheses, `;` between them:
    /// they were cut into two statements, which failed statement by
    /// statement (a `no-transaction` section, any retry).
    #[test]
    fn postgres_does_not_split_inside_parentheses() {
        let text = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO log VALUES (NEW.a); INSERT INTO log VALUES (1));\nSELECT 1;";
        assert_eq!(
            stmts(text, Dialect::Postgres),
            vec![
                ("CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO log VALUES (NEW.a); INSERT INTO log VALUES (1))", 10),
                ("SELECT 1", 11)
            ]
        );
    }

    #[test]
    fn chunks_without_code_are_not_statements() {
        all_dialects("", &[]);
        all_dialects(" ;; \n;", &[]);
        all_dialects("SELECT 1;\n-- trailing; comment\n/* and; this */\n", &[("SELECT 1", 10)]);
    }

    #[test]
    fn transaction_control_is_recognised_by_its_head_only() {
        let text = "begin;\nSTART TRANSACTION;\nCOMMIT;\nend;\nSavepoint a;\nRELEASE SAVEPOINT a;\nROLLBACK TO a;\n\
                    CREATE TRIGGER t AFTER INSERT ON x BEGIN UPDATE y SET n = 1; END;\nSTART SLAVE;\n\
                    START /* the */ TRANSACTION;\nSELECT commit FROM beginnings;\nBEGINNING_TABLE;\nendless;\n\
                    abort work;\nPREPARE TRANSACTION 'x';\nPREPARE stmt AS SELECT 1;\nXA START 'x';\nSELECT abort;";
        let statements = split(text, 1, Dialect::Sqlite).unwrap_or_default();
        let heads: Vec<Option<String>> = statements.iter().map(|s| s.transaction_control(Dialect::Sqlite)).collect();
        let heads: Vec<Option<&str>> = heads.iter().map(Option::as_deref).collect();
        let control = [Some("begin"), Some("START"), Some("COMMIT"), Some("end"), Some("Savepoint"), Some("RELEASE")];
        assert_eq!(heads[..6], control);
        assert_eq!(heads[6..13], [Some("ROLLBACK"), None, None, Some("START"), None, None, None]);
        assert_eq!(heads[13..], [Some("abort"), Some("PREPARE"), None, Some("XA"), None]);
    }

    /// MariaDB's anonymous block is not transaction control: it was refused
    /// as "`BEGIN` in a transactional section".
    #[test]
    fn begin_not_atomic_is_a_block_not_a_transaction() {
        let text = "DELIMITER //\nBEGIN NOT ATOMIC\n  SELECT 1;\nEND //";
        let statements = split(text, 1, Dialect::Mysql).unwrap_or_default();
        assert_eq!(statements.len(), 1);
        assert_eq!(statements[0].transaction_control(Dialect::Mysql), None);
        assert_eq!(statements[0].transaction_move(Dialect::Mysql), TransactionMove::Neither);
    }

    /// Which transaction of its own a `no-transaction` section has open after
    /// each statement: progress is recorded only outside one.
    #[test]
    fn own_transactions_open_and_close() {
        let text = "INSERT INTO a VALUES (1);\nBEGIN;\nSAVEPOINT s;\nROLLBACK TO s;\nCOMMIT;\nSTART TRANSACTION;\n\
                    COMMIT AND CHAIN;\nROLLBACK;\nbegin work;\nend;\nXA START 'x';\nXA END 'x';\nXA COMMIT 'x';";
        let statements = split(text, 1, Dialect::Postgres).unwrap_or_default();
        let open = open_transactions(&statements, Dialect::Postgres);
        let b = Some(1);
        let s = Some(5);
        let w = Some(8);
        let x = Some(10);
        assert_eq!(open, [None, b, b, b, None, s, s, None, w, None, x, x, None]);
        let mysql = split("START TRANSACTION;\nEND;\nCOMMIT;", 1, Dialect::Mysql).unwrap_or_default();
        assert_eq!(open_transactions(&mysql, Dialect::Mysql), [Some(0), Some(0), None], "MySQL's END ends a block");
    }

    #[test]
    fn the_index_a_concurrent_build_names_is_found_as_written() {
        let text = "CREATE INDEX CONCURRENTLY k1_x ON k1 (x);\ncreate unique index concurrently if not exists \
                    s.\"Big Idx\" on t (a);\nCREATE INDEX CONCURRENTLY ON t (a);\nCREATE INDEX k ON t (a);\n\
                    CREATE INDEX CONCURRENTLY IF NOT EXISTS ON t (a);\nSELECT 'CREATE INDEX CONCURRENTLY x ON t (a)';";
        let statements = split(text, 1, Dialect::Postgres).unwrap_or_default();
        let built: Vec<Option<String>> =
            statements.iter().map(|s| s.index_built_concurrently(Dialect::Postgres)).collect();
        let expected = [Some("k1_x"), Some("s.\"Big Idx\""), None, None, None, None];
        assert_eq!(built, expected.map(|n| n.map(str::to_string)));
        assert_eq!(statements[0].index_built_concurrently(Dialect::Mysql), None);
    }

    /// SQLite's `SAVEPOINT` outside a transaction begins one, and releasing
    /// that savepoint commits it: a `no-transaction` section that ended
    /// inside one had its `applied` row rolled back with it, after `ok`.
    #[test]
    fn a_sqlite_savepoint_outside_a_transaction_begins_one() {
        let text = "SAVEPOINT s1;\nCREATE TABLE a (x int);\nSAVEPOINT inner;\nRELEASE inner;\nROLLBACK TO s1;\n\
                    RELEASE SAVEPOINT \"S1\";\nINSERT INTO a VALUES (1);\nBEGIN;\nSAVEPOINT x;\nRELEASE x;\nCOMMIT;";
        let statements = split(text, 1, Dialect::Sqlite).unwrap_or_default();
        let s = Some(0);
        let b = Some(7);
        let expected = [s, s, s, s, s, None, None, b, b, b, None];
        assert_eq!(open_transactions(&statements, Dialect::Sqlite), expected);
        // Elsewhere a savepoint lives only inside a transaction.
        let open = open_transactions(
            &split("SAVEPOINT s1;\nSELECT 1;", 1, Dialect::Postgres).unwrap_or_default(),
            Dialect::Postgres,
        );
        assert_eq!(open, [None, None]);
    }

    /// MySQL runs the text of an executable comment: transaction control
    /// inside one is transaction control.
    #[test]
    fn transaction_control_in_a_mysql_executable_comment_counts() {
        let text = "/*!40101 COMMIT */;\n/*M!100100 START TRANSACTION */;\n/*!BEGIN */;\n/* COMMIT */ SELECT 1;";
        let statements = split(text, 1, Dialect::Mysql).unwrap_or_default();
        let heads: Vec<Option<String>> = statements.iter().map(|s| s.transaction_control(Dialect::Mysql)).collect();
        assert_eq!(heads, [Some("COMMIT".to_string()), Some("START".to_string()), Some("BEGIN".to_string()), None]);
        let moves: Vec<TransactionMove> = statements.iter().map(|s| s.transaction_move(Dialect::Mysql)).collect();
        use TransactionMove::{Begins, Ends, Neither};
        assert_eq!(moves, [Ends, Begins, Begins, Neither]);
    }

    /// On MySQL, what would keep pygrate from writing the state row that
    /// records a statement is refused before anything runs: `LOCK TABLES`
    /// made every later state write fail, and the error named the marker.
    #[test]
    fn statements_that_lock_out_the_state_are_named_on_mysql() {
        let text = "LOCK TABLES a WRITE;\nlock table a read;\nFLUSH TABLES WITH READ LOCK;\nSET autocommit = 0;\n\
                    SET @@session.autocommit = 0;\nFLUSH TABLES;\nSET sql_mode = '';\nSELECT 'LOCK TABLES';";
        let statements = split(text, 1, Dialect::Mysql).unwrap_or_default();
        let refused: Vec<bool> = statements.iter().map(|s| s.refused(Dialect::Mysql).is_some()).collect();
        assert_eq!(refused, [true, true, true, true, true, false, false, false]);
        let pg = split("LOCK TABLE a IN ACCESS EXCLUSIVE MODE;", 1, Dialect::Postgres).unwrap_or_default();
        assert_eq!(pg[0].refused(Dialect::Postgres), None, "PostgreSQL's LOCK TABLE locks one table");
    }

    /// Whether each statement of `text` is refused.
    fn refused(text: &str, dialect: Dialect) -> Vec<bool> {
        split(text, 1, dialect).unwrap_or_default().iter().map(|s| s.refused(dialect).is_some()).collect()
    }

    /// `DISCARD ALL` released the migration lock mid-run, and a second
    /// pygrate applied the same phase again; `SET client_encoding` made the
    /// state rows of a non-ASCII version name unreadable; `\set` was sent.
    #[test]
    fn statements_that_release_the_lock_or_misencode_are_refused() {
        let pg = "DISCARD ALL;\nDISCARD PLANS;\nSELECT pg_advisory_unlock_all();\nSELECT pg_advisory_unlock(42);\n\
                  SET client_encoding = 'LATIN1';\nSET client_encoding TO 'UTF8';\nSET NAMES 'utf-8';\n\
                  RESET client_encoding;\n\\set ON_ERROR_STOP on\nSELECT 'DISCARD ALL';";
        // The client command has no `;`: it runs into the next statement,
        // which is refused with it, at the command's line.
        assert_eq!(refused(pg, Dialect::Postgres), [true, false, true, false, true, false, false, false, true]);
        let mysql = "SELECT RELEASE_ALL_LOCKS();\nSELECT RELEASE_LOCK('mine');\nSET NAMES latin1;\n\
                     SET CHARACTER SET latin1;\nSET NAMES utf8mb4 COLLATE utf8mb4_bin;\nSET character_set_client = utf8;";
        assert_eq!(refused(mysql, Dialect::Mysql), [true, false, true, true, false, false]);
    }

    #[test]
    fn mentions_ignores_ascii_case() {
        assert!(mentions("SELECT PG_ADVISORY_UNLOCK_ALL()", "pg_advisory_unlock_all"));
        assert!(mentions("x client_encoding", "client_encoding"));
        assert!(!mentions("client_encodin", "client_encoding"));
        assert!(!mentions("", "a"));
        assert!(mentions("é RELEASE_all_locks", "RELEASE_ALL_LOCKS"));
    }

    /// The checks read what the server runs: `/*!40101 SET NAMES latin1 */`
    /// (as mysqldump writes it), `SELECT /*!RELEASE_ALL_LOCKS()*/` and a
    /// quoted or `set_config` client encoding all passed.
    #[test]
    fn refusals_see_executable_comments_and_other_spellings() {
        let mysql = "/*!40101 SET NAMES latin1 */;
SELECT /*!RELEASE_ALL_LOCKS()*/;
/*! LOCK TABLES t WRITE */;
                     /*M!100100 SET autocommit = 0 */;
                     /*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!50503 SET NAMES utf8mb4 */;
                     /*!40101 SET CHARACTER_SET_CLIENT = @OLD_CHARACTER_SET_CLIENT */;
                     /*!40000 ALTER TABLE t DISABLE KEYS */;
SELECT '/*!40101 SET NAMES latin1 */';";
        assert_eq!(refused(mysql, Dialect::Mysql), [true, true, true, true, false, false, false, false, false]);
        let pg = "SET \"client_encoding\" = 'LATIN1';
SELECT set_config('client_encoding', 'LATIN1', false);
                  SELECT set_config('client_encoding', 'UTF8', false);
SELECT 'client_encoding';";
        assert_eq!(refused(pg, Dialect::Postgres), [true, true, false, false]);
    }

    #[test]
    fn leading_comments_excluded_inner_and_trailing_kept() {
        all_dialects(
            "-- about a\n/* more */ SELECT 'a' /* in; */ -- tail;\n;\n\n-- about b\nSELECT 2 -- two\n",
            &[("SELECT 'a' /* in; */ -- tail;", 11), ("SELECT 2 -- two", 15)],
        );
    }

    #[test]
    fn semicolons_in_quotes_do_not_split() {
        all_dialects(
            "INSERT INTO t VALUES ('a;b', 'it''s;');\nSELECT \"x;y\", `p;q` FROM t;",
            &[("INSERT INTO t VALUES ('a;b', 'it''s;')", 10), ("SELECT \"x;y\", `p;q` FROM t", 11)],
        );
    }

    #[test]
    fn backslashes_escape_only_in_mysql() {
        let text = "SELECT '\\'; SELECT ';' -- '\nSELECT 3";
        for dialect in [Dialect::Postgres, Dialect::Sqlite] {
            assert_eq!(stmts(text, dialect), vec![("SELECT '\\'", 10), ("SELECT ';' -- '\nSELECT 3", 10)]);
        }
        // In MySQL `\'` does not close the first literal.
        assert_eq!(stmts(text, Dialect::Mysql), vec![("SELECT '\\'; SELECT '", 10), ("' -- '\nSELECT 3", 10)]);
        assert_eq!(
            stmts("SELECT E'a\\';'; SELECT 2", Dialect::Postgres),
            vec![("SELECT E'a\\';'", 10), ("SELECT 2", 10)]
        );
    }

    #[test]
    fn comments_per_dialect() {
        assert_eq!(stmts("SELECT 1 # x; y\n;", Dialect::Mysql), vec![("SELECT 1 # x; y", 10)]);
        assert_eq!(stmts("SELECT 1 # x; y\n;", Dialect::Postgres), vec![("SELECT 1 # x", 10), ("y", 10)]);
        let nested = "/* a /* b; */ c; */ SELECT 1;";
        assert_eq!(stmts(nested, Dialect::Postgres), vec![("SELECT 1", 10)]);
        assert_eq!(stmts(nested, Dialect::Sqlite), vec![("c", 10), ("*/ SELECT 1", 10)]);
    }

    #[test]
    fn postgres_dollar_quotes_and_parameters() {
        let text = "CREATE FUNCTION f() RETURNS int AS $body$\nBEGIN\n  RETURN 1; -- $$;\nEND;\n$body$ LANGUAGE plpgsql;\nPREPARE p AS SELECT $1;\nSELECT $$;$$";
        assert_eq!(
            stmts(text, Dialect::Postgres),
            vec![
                ("CREATE FUNCTION f() RETURNS int AS $body$\nBEGIN\n  RETURN 1; -- $$;\nEND;\n$body$ LANGUAGE plpgsql", 10),
                ("PREPARE p AS SELECT $1", 15),
                ("SELECT $$;$$", 16),
            ]
        );
    }

    #[test]
    fn sqlite_trigger_with_case_inside() {
        let text = "CREATE TRIGGER IF NOT EXISTS trg AFTER UPDATE ON t\nFOR EACH ROW WHEN (NEW.a > 0)\nBEGIN\n  UPDATE u SET b = CASE WHEN NEW.a > 1 THEN 'x;' ELSE 'y' END;\n  DELETE FROM v;\nEND;\nSELECT 1;";
        assert_eq!(
            stmts(text, Dialect::Sqlite),
            vec![
                ("CREATE TRIGGER IF NOT EXISTS trg AFTER UPDATE ON t\nFOR EACH ROW WHEN (NEW.a > 0)\nBEGIN\n  UPDATE u SET b = CASE WHEN NEW.a > 1 THEN 'x;' ELSE 'y' END;\n  DELETE FROM v;\nEND", 10),
                ("SELECT 1", 16),
            ]
        );
    }

    #[test]
    fn postgres_begin_atomic() {
        let text = "create or replace function f(a int) returns int language sql\nbegin atomic\n  select a + 1;\n  select case a when 1 then 2 end;\nend;\nselect f(1);";
        assert_eq!(
            stmts(text, Dialect::Postgres),
            vec![(text.get(..text.len() - "\nselect f(1);".len() - 1).unwrap_or_default(), 10), ("select f(1)", 15)]
        );
    }

    /// `begin` and `end` as names opened or closed a body: a parameter named
    /// `begin` swallowed every later statement of the section (lint, the
    /// COMMIT check and resume saw one statement), and `NEW.end` closed a
    /// trigger's body early.
    #[test]
    fn begin_and_end_as_names_open_and_close_nothing() {
        let cases: [(Dialect, &str, &[&str]); 6] = [
            (
                Dialect::Postgres,
                "CREATE FUNCTION in_range(begin timestamptz, finish timestamptz) RETURNS bool\n  LANGUAGE sql AS $$ SELECT begin < finish $$;\nDROP TABLE users;",
                &["CREATE FUNCTION", "DROP TABLE users"],
            ),
            (
                Dialect::Postgres,
                "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t(begin) VALUES (1); UPDATE t SET begin = 2 WHERE begin IS NULL; END;\nCOMMIT;",
                &["CREATE PROCEDURE", "COMMIT"],
            ),
            (
                Dialect::Sqlite,
                "CREATE TRIGGER tr AFTER UPDATE ON t BEGIN UPDATE t SET begin = 1 WHERE 0; END;\nCOMMIT;",
                &["CREATE TRIGGER", "COMMIT"],
            ),
            (
                Dialect::Sqlite,
                "CREATE TRIGGER tr AFTER UPDATE OF a, begin ON t WHEN NEW.begin > 0 BEGIN\n  UPDATE t SET a = new.end WHERE begin < 1;\n  INSERT INTO u(begin, end) VALUES (1, 2);\nEND;\nSELECT 1;",
                &["CREATE TRIGGER", "SELECT 1"],
            ),
            (
                Dialect::Mysql,
                "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.begin = 1; SET NEW.end = CASE WHEN NEW.a THEN 2 END; END;\nCREATE TABLE t2 (x int);",
                &["CREATE TRIGGER", "CREATE TABLE t2"],
            ),
            (
                Dialect::Mysql,
                "CREATE PROCEDURE p() BEGIN DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; END; SELECT 1; END;\nCALL p();",
                &["CREATE PROCEDURE", "CALL p()"],
            ),
        ];
        for (dialect, text, starts) in cases {
            let found = stmts(text, dialect);
            assert_eq!(found.len(), starts.len(), "{dialect:?} {text:?}: {found:?}");
            for ((sql, _), start) in found.iter().zip(starts) {
                assert!(sql.starts_with(start), "{dialect:?}: {sql:?} should start with {start:?}");
            }
            // The body is whole: it ends with its own END.
            assert!(found[0].0.trim_end().to_ascii_uppercase().ends_with("END") || dialect == Dialect::Postgres);
        }
    }

    #[test]
    fn mysql_procedure_without_delimiter() {
        let text = "CREATE DEFINER = 'me'@'%' PROCEDURE p()\nBEGIN\n  IF x THEN SELECT 1; END IF;\n  lbl: LOOP LEAVE lbl; END LOOP lbl;\n  CASE y WHEN 1 THEN SELECT 2; END CASE;\n  BEGIN SELECT 3; END;\nEND;\nCALL p();";
        let (body, call) = text.split_at(text.len() - "\nCALL p();".len());
        assert_eq!(
            stmts(text, Dialect::Mysql),
            vec![(body.trim_end_matches(';'), 10), (call.trim_matches(['\n', ';']), 17)]
        );
    }

    #[test]
    fn transactions_and_non_routines_split_normally() {
        all_dialects(
            "BEGIN;\nINSERT INTO t VALUES (1);\nCOMMIT;\nBEGIN TRANSACTION; END;",
            &[("BEGIN", 10), ("INSERT INTO t VALUES (1)", 11), ("COMMIT", 12), ("BEGIN TRANSACTION", 13), ("END", 13)],
        );
        // A table or column named like a routine keyword does not open a body.
        all_dialects(
            "CREATE TABLE event (trigger int, begin int);\nCREATE VIEW v AS SELECT 1 AS function, 2 AS begin;\nSELECT 3;",
            &[("CREATE TABLE event (trigger int, begin int)", 10), ("CREATE VIEW v AS SELECT 1 AS function, 2 AS begin", 11), ("SELECT 3", 12)],
        );
    }

    #[test]
    fn mysql_delimiter_procedure() {
        let text = "DELIMITER //\nCREATE PROCEDURE p()\nBEGIN\n  IF a THEN SELECT ';'; END IF;\nEND//\ndelimiter ;\nCALL p();\nDELIMITER $$\nSELECT 1$$ SELECT 2 $$\nDELIMITER ;";
        let expected = [
            ("CREATE PROCEDURE p()\nBEGIN\n  IF a THEN SELECT ';'; END IF;\nEND", 11),
            ("CALL p()", 16),
            ("SELECT 1", 18),
            ("SELECT 2", 18),
        ];
        all_dialects(text, &expected);
    }

    #[test]
    fn delimiter_glued_inside_words_and_multi_token() {
        assert_eq!(
            stmts("DELIMITER ;;\nSELECT 1; SELECT 2;;\nSELECT 3", Dialect::Mysql),
            vec![("SELECT 1; SELECT 2", 11), ("SELECT 3", 12)]
        );
        // `$$` ends a word; the rest of the word starts the next statement.
        assert_eq!(stmts("DELIMITER $$\nEND$$abc$$", Dialect::Mysql), vec![("END", 11), ("abc", 11)]);
        // Not inside literals or comments; a comment may follow the DELIMITER value.
        assert_eq!(
            stmts("DELIMITER // -- custom\nSELECT '//' /* // */ //\n", Dialect::Sqlite),
            vec![("SELECT '//' /* // */", 11)]
        );
    }

    #[test]
    fn delimiter_only_at_line_start_of_a_new_statement() {
        assert_eq!(stmts("SELECT 1\nDELIMITER //", Dialect::Mysql), vec![("SELECT 1\nDELIMITER //", 10)]);
        assert_eq!(stmts("/* x */ DELIMITER //", Dialect::Mysql), vec![("DELIMITER //", 10)]);
        let error = split("SELECT 1;\n  DELIMITER  \nSELECT 2", 10, Dialect::Mysql);
        assert_eq!(error.map_err(|e| e.line), Err(11));
    }

    #[test]
    fn crlf_input() {
        all_dialects(
            "-- c\r\nSELECT 1 -- one\r\n;\r\nSELECT\r\n  2;\r\n",
            &[("SELECT 1 -- one", 11), ("SELECT\r\n  2", 13)],
        );
        all_dialects("DELIMITER //\r\nSELECT 1//\r\n", &[("SELECT 1", 11)]);
    }

    #[test]
    fn unterminated_constructs_are_errors_at_their_first_line() {
        let error = split("SELECT 1;\nSELECT 'a;\nb;\n", 10, Dialect::Postgres);
        assert_eq!(
            error,
            Err(LexError { line: 11, message: "unterminated string literal (opened with ' here)".into() })
        );
        assert_eq!(split("SELECT 1;\n\n/* x", 1, Dialect::Sqlite).map_err(|e| e.line), Err(3));
        assert_eq!(split("\nSELECT $f$ x $$", 1, Dialect::Postgres).map_err(|e| e.line), Err(2));
    }

    #[test]
    fn odd_delimiters_do_not_panic() {
        // `$$` is a delimiter before it can open a dollar quote.
        assert_eq!(stmts("DELIMITER $$\nSELECT 1 $$", Dialect::Postgres), vec![("SELECT 1", 11)]);
        assert_eq!(stmts("DELIMITER --\nSELECT 1 -- 2", Dialect::Sqlite), vec![("SELECT 1", 11), ("2", 11)]);
        assert_eq!(stmts("DELIMITER é\nSELECT aéb", Dialect::Sqlite), vec![("SELECT a", 11), ("b", 11)]);
    }

    // --- property tests -------------------------------------------------

    const VOCABULARY: &[&str] = &[
        "'",
        "\"",
        "`",
        "--",
        "#",
        "/*",
        "*/",
        "$$",
        "$a$",
        "$1",
        ";",
        ";",
        "\n",
        "\r\n",
        " ",
        " ",
        "\\",
        "BEGIN",
        "END",
        "CASE",
        "IF",
        "CREATE TRIGGER",
        "CREATE PROCEDURE",
        "(",
        "AS",
        "DELIMITER //\n",
        "DELIMITER ;\n",
        "DELIMITER $$\n",
        "//",
        "select",
        "x",
        "é",
        "日本",
        "1.5",
    ];

    fn sql_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            prop::collection::vec(prop::sample::select(VOCABULARY), 0..40).prop_map(|parts| parts.concat()),
        ]
    }

    /// Every non-whitespace char between statements must be a delimiter, a
    /// `DELIMITER` line or a comment. Deliberately simpler than the splitter:
    /// it walks the gaps as text, tracking the delimiter itself.
    fn check_gaps(text: &str, statements: &[Statement<'_>], dialect: Dialect) -> Result<(), String> {
        let mut delimiter = ";";
        let mut pos = 0;
        let bounds = statements.iter().map(|s| s.span.clone()).chain(std::iter::once(text.len()..text.len()));
        for span in bounds {
            if span.start < pos || span.end < span.start {
                return Err(format!("{span:?} overlaps or precedes {pos}"));
            }
            let mut gap = text.get(pos..span.start).ok_or("gap off a char boundary")?;
            loop {
                gap = gap.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
                if gap.is_empty() {
                    break;
                }
                if let Some(rest) = gap.strip_prefix(delimiter) {
                    gap = rest;
                } else if gap.get(..9).is_some_and(|w| w.eq_ignore_ascii_case("DELIMITER")) {
                    let value = gap[9..].trim_start_matches([' ', '\t']);
                    let len = value.find(|c: char| c.is_ascii_whitespace() || c == '\x0b').unwrap_or(value.len());
                    delimiter = &value[..len];
                    gap = &value[len..];
                } else {
                    match Lexer::new(gap, 1, dialect).next() {
                        Some(Ok(t)) if t.is_comment() => gap = &gap[t.text.len()..],
                        other => return Err(format!("lost text {gap:?} ({other:?}) before {span:?}")),
                    }
                }
            }
            pos = span.end;
        }
        Ok(())
    }

    fn check_statement(statement: &Statement<'_>, text: &str, dialect: Dialect) -> Result<(), String> {
        if Some(statement.sql) != text.get(statement.span.clone()) {
            return Err(format!("{statement:?} is not its span"));
        }
        // Lexed in place, not alone: on MySQL whether `--` opens a comment
        // depends on the char after it, which may lie past the statement.
        let first = Lexer::new(text.get(statement.span.start..).unwrap_or_default(), 1, dialect).next();
        if !first.is_some_and(|t| t.is_ok_and(|t| t.is_code())) {
            return Err(format!("{statement:?} does not start with code"));
        }
        if statement.sql.ends_with(|c: char| c.is_ascii_whitespace()) {
            return Err(format!("{statement:?} ends with whitespace"));
        }
        let line = 7 + text.get(..statement.span.start).unwrap_or_default().matches('\n').count();
        if statement.line != line {
            return Err(format!("{statement:?} is on line {line}"));
        }
        Ok(())
    }

    /// A quote-free statement that never starts a routine or a DELIMITER line.
    fn simple_statement() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            "[a-z][a-z0-9_]{0,6}".prop_filter("no routines", |w| !matches!(w.as_str(), "create" | "delimiter")),
            "[0-9]{1,4}",
            prop::sample::select(vec!["(", ")", ",", "=", "*", "<", ">", "+", "BEGIN", "END", "CASE", "é"])
                .prop_map(String::from),
        ];
        let gap = prop::sample::select(vec![" ", "\n", "\t", "  ", "\r\n"]);
        (atom.clone(), prop::collection::vec((gap, atom), 0..6)).prop_map(|(first, rest)| {
            rest.into_iter().fold(first, |mut s, (gap, atom)| {
                s.push_str(gap);
                s.push_str(&atom);
                s
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn never_panics_and_loses_nothing(text in sql_like()) {
            for dialect in DIALECTS {
                match split(&text, 7, dialect) {
                    Ok(statements) => {
                        for statement in &statements {
                            check_statement(statement, &text, dialect).map_err(TestCaseError::fail)?;
                        }
                        check_gaps(&text, &statements, dialect).map_err(TestCaseError::fail)?;
                    }
                    Err(e) => prop_assert!(e.line >= 7 && e.line <= 7 + text.matches('\n').count()),
                }
            }
        }

        #[test]
        fn splits_simple_statements_exactly(
            statements in prop::collection::vec(simple_statement(), 1..8),
            separators in prop::collection::vec(prop::sample::select(vec![";", ";\n", " ;\n\n", ";\r\n", "\n;"]), 8),
            trailing in any::<bool>(),
        ) {
            let mut text = String::new();
            let mut expected = Vec::new();
            for (i, (statement, separator)) in statements.iter().zip(&separators).enumerate() {
                expected.push((statement.as_str(), 7 + text.matches('\n').count()));
                text.push_str(statement);
                if trailing || i + 1 < statements.len() {
                    text.push_str(separator);
                }
            }
            // PostgreSQL keeps a `;` inside parentheses, as psql does: an
            // unclosed `(` runs on into the next statement there.
            let balanced = statements.iter().all(|s| {
                s.chars().try_fold(0usize, |depth, c| match c {
                    '(' => Some(depth + 1),
                    ')' => Some(depth.saturating_sub(1)),
                    _ => Some(depth),
                }) == Some(0)
            });
            for dialect in DIALECTS.into_iter().filter(|d| balanced || *d != Dialect::Postgres) {
                let got: Vec<_> = split(&text, 7, dialect).map_err(|e| TestCaseError::fail(e.to_string()))?
                    .into_iter().map(|s| (s.sql, s.line)).collect();
                prop_assert_eq!(&got, &expected);
            }
        }
    }
}
