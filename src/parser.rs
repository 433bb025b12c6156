//! The file format (SPEC 2): marker lines split a version file into sections.

use std::path::{Path, PathBuf};

use crate::checksum::section_checksum;
use crate::dialect::Dialect;
use crate::error::FileError;
use crate::lexer::{Lexer, TokenKind};
use crate::phase::{Phase, SectionKind};
use crate::project::VersionId;
use crate::splitter::{open_transactions, split, Statement};
use crate::text::closest;

pub const NO_TRANSACTION: &str = "no-transaction";
const OPTIONS: [&str; 1] = [NO_TRANSACTION];

/// One section of a version file.
#[derive(Debug, Clone)]
pub struct Section {
    pub kind: SectionKind,
    /// Line of the `-- @kind` marker.
    pub marker_line: usize,
    /// Text between the marker line and the next marker (or the end).
    pub body: String,
    pub no_transaction: bool,
    /// Lint rules silenced for the whole section on its marker line.
    pub allow: Vec<String>,
    pub checksum: String,
}

impl Section {
    /// File line of the body's first line.
    pub fn body_line(&self) -> usize {
        self.marker_line + 1
    }

    /// The body's statements in `dialect`, or its format errors: an
    /// unterminated literal or comment (at the line where it opened), and
    /// transaction control in a section pygrate runs in its own transaction
    /// (or, on MySQL, each statement's): the author's COMMIT would end it
    /// early and leave the state row outside it; a `no-transaction` section
    /// that ends inside a transaction it began; and on MySQL the statements
    /// that would keep pygrate from writing its state (`LOCK TABLES`,
    /// `FLUSH … WITH READ LOCK`, `SET autocommit`).
    pub fn statements(&self, path: &Path, dialect: Dialect) -> Result<Vec<Statement<'_>>, Vec<FileError>> {
        let statements =
            split(&self.body, self.body_line(), dialect).map_err(|e| vec![FileError::new(path, e.line, e.message)])?;
        let mut errors = Vec::new();
        for statement in &statements {
            if let Some(why) = statement.refused(dialect) {
                errors.push(FileError::new(path, statement.line, why));
            }
            if self.no_transaction {
                continue;
            }
            if let Some(control) = statement.transaction_control(dialect) {
                errors.push(FileError::new(
                    path,
                    statement.line,
                    format!(
                        "`{control}` in a transactional section: pygrate runs each section in its own transaction; \
                         remove it, or mark the section `-- @{} no-transaction` to manage transactions yourself",
                        self.kind.name()
                    ),
                ));
            }
        }
        // The state row that records the section must not be written inside
        // the section's own transaction, where a rollback would take it too.
        let unclosed = self.no_transaction.then(|| open_transactions(&statements, dialect).last().copied().flatten());
        if let Some(begun) = unclosed.flatten().and_then(|i| statements.get(i)) {
            errors.push(FileError::new(
                path,
                begun.line,
                "a transaction begins here and the section ends inside it: end it with COMMIT",
            ));
        }
        if errors.is_empty() {
            Ok(statements)
        } else {
            Err(errors)
        }
    }

    /// Whether running the section runs any statement (comments-only is a
    /// no-op). A body that does not lex counts as SQL: it is not a no-op.
    pub fn runs_sql(&self, dialect: Dialect) -> bool {
        split(&self.body, self.body_line(), dialect).map_or(true, |statements| !statements.is_empty())
    }
}

/// A parsed version file.
#[derive(Debug, Clone)]
pub struct Migration {
    pub id: VersionId,
    pub path: PathBuf,
    sections: [Option<Section>; 5],
}

impl Migration {
    pub fn section(&self, kind: SectionKind) -> Option<&Section> {
        self.sections[kind.index()].as_ref()
    }

    /// Every format error that only splitting into statements shows, in
    /// every section: a rollback section's COMMIT must stop CI, not surface
    /// in the middle of an incident.
    pub fn statement_errors(&self, dialect: Dialect) -> Vec<FileError> {
        self.sections().filter_map(|section| section.statements(&self.path, dialect).err()).flatten().collect()
    }

    /// The statement-level format errors that are errors in every dialect
    /// (an unterminated literal, a COMMIT in a transactional section), for
    /// when the project's dialect is unknown.
    pub fn statement_errors_in_every_dialect(&self) -> Vec<FileError> {
        // Splitting is most of the work: a dialect is asked only while
        // errors remain that every dialect so far agrees on.
        let mut errors = self.statement_errors(Dialect::Postgres);
        for dialect in [Dialect::Sqlite, Dialect::Mysql] {
            if errors.is_empty() {
                break;
            }
            let lines: Vec<Option<usize>> = self.statement_errors(dialect).iter().map(|e| e.line).collect();
            errors.retain(|e| lines.contains(&e.line));
        }
        errors
    }

    pub fn sections(&self) -> impl Iterator<Item = &Section> {
        self.sections.iter().flatten()
    }

    /// Checksum of the section running `phase`, if the file has one.
    pub fn phase_checksum(&self, phase: Phase) -> Option<&str> {
        self.section(phase.section()).map(|s| s.checksum.as_str())
    }

    /// Checksum of the section undoing `phase`, if the file has one.
    pub fn rollback_checksum(&self, phase: Phase) -> Option<&str> {
        phase.rollback_section().and_then(|k| self.section(k)).map(|s| s.checksum.as_str())
    }
}

/// Parses one version file. Every problem is returned, each at its line.
pub fn parse(id: VersionId, path: &Path, bytes: &[u8]) -> Result<Migration, Vec<FileError>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let before = &bytes[..e.valid_up_to()];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            return Err(vec![FileError::new(
                path,
                line,
                "file is not valid UTF-8; save it as UTF-8 (a byte-order mark is fine)",
            )]);
        }
    };
    // SQLite reads a statement only up to a NUL: `DELETE FROM t \0WHERE …`
    // would delete every row.
    if let Some(at) = text.find('\0') {
        let line = text[..at].matches('\n').count() + 1;
        return Err(vec![FileError::new(
            path,
            line,
            "file holds a NUL byte, which no database reads as SQL (SQLite stops the statement there); remove it",
        )]);
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // An editor shows a line break at a lone CR; the markers do not see one,
    // nor do SQLite's and MySQL's `--` comments, but PostgreSQL's end there:
    // `-- note\r; DROP TABLE users` would run a statement nothing checked.
    let lone_cr = text.match_indices('\r').map(|(at, _)| at).find(|&at| text.as_bytes().get(at + 1) != Some(&b'\n'));
    if let Some(at) = lone_cr {
        let line = text[..at].matches('\n').count() + 1;
        return Err(vec![FileError::new(
            path,
            line,
            "carriage return alone, not followed by a line feed (a classic Mac OS line ending): editors show a \
             line break there, but markers do not and databases disagree; save the file with LF or CRLF line \
             endings (in a string, write the character as an escape)",
        )]);
    }
    let mut errors = Vec::new();
    let mut sections: [Option<Section>; 5] = Default::default();
    // (kind, marker line, no_transaction, allow, body start offset)
    let mut open: Option<(SectionKind, usize, bool, Vec<String>, usize)> = None;
    let mut preamble_end = None;
    let mut offset = 0;
    let mut close =
        |open: Option<(SectionKind, usize, bool, Vec<String>, usize)>, end: usize, errors: &mut Vec<FileError>| {
            if let Some((kind, marker_line, no_transaction, allow, start)) = open {
                let body = text.get(start..end).unwrap_or_default().to_string();
                let slot = &mut sections[kind.index()];
                if let Some(first) = slot {
                    errors.push(FileError::new(
                        path,
                        marker_line,
                        format!(
                            "section `@{kind}` appears twice (first at line {}); merge them into one",
                            first.marker_line
                        ),
                    ));
                } else {
                    let checksum = section_checksum(&body);
                    *slot = Some(Section { kind, marker_line, body, no_transaction, allow, checksum });
                }
            }
        };
    for (index, raw_line) in text.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        let line_start = offset;
        offset += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        let Some(marker) = marker_text(line) else {
            continue;
        };
        if preamble_end.is_none() {
            preamble_end = Some(line_start);
        }
        match parse_marker(marker) {
            Ok((kind, no_transaction, allow)) => {
                close(open.take(), line_start, &mut errors);
                open = Some((kind, line_no, no_transaction, allow, offset));
            }
            Err(message) => {
                close(open.take(), line_start, &mut errors);
                errors.push(FileError::new(path, line_no, message));
            }
        }
    }
    close(open.take(), text.len(), &mut errors);

    match preamble_end {
        None => errors.push(match text.lines().enumerate().find_map(|(i, l)| Some((i + 1, marker_lookalike(l)?))) {
            Some((line, (kind, why))) => FileError::new(
                path,
                line,
                format!(
                    "no section marker: this `-- @{kind}` line {}; write it as `-- @{kind}`, nothing before it",
                    why.describe()
                ),
            ),
            None => {
                FileError::new(path, 1, "no section marker; start each section with a marker line such as `-- @add`")
            }
        }),
        Some(end) => {
            if let Some(line) = first_code_line(text.get(..end).unwrap_or_default()) {
                errors.push(FileError::new(
                    path,
                    line,
                    "SQL before the first marker; only comments may come before it: move it under a marker such as `-- @add`",
                ));
            }
        }
    }
    for (rollback, forward) in
        [(SectionKind::RollbackAdd, SectionKind::Add), (SectionKind::RollbackSimdrop, SectionKind::Simdrop)]
    {
        if let (Some(r), None) = (&sections[rollback.index()], &sections[forward.index()]) {
            errors.push(FileError::new(
                path,
                r.marker_line,
                format!("`@{rollback}` without an `@{forward}` section: there is nothing for it to undo; add `-- @{forward}` or remove it"),
            ));
        }
    }
    errors.sort_by_key(|e| e.line);
    if errors.is_empty() {
        Ok(Migration { id, path: path.to_path_buf(), sections })
    } else {
        Err(errors)
    }
}

/// The part after `--`+spaces+`@` when `line` is a marker attempt.
fn marker_text(line: &str) -> Option<&str> {
    line.strip_prefix("--")?.trim_start_matches([' ', '\t']).strip_prefix('@')
}

/// What keeps a marker-like comment line from being a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAMarker {
    Indented,
    /// `--- @drop`, `-- -@drop`, `--\u{a0}@drop`.
    ExtraText,
    /// A byte-order mark (left by concatenating files) or a no-break space
    /// before the `--`.
    Invisible,
}

impl NotAMarker {
    pub fn describe(self) -> &'static str {
        match self {
            NotAMarker::Indented => "is indented",
            NotAMarker::ExtraText => "has extra dashes or characters before its `@`",
            NotAMarker::Invisible => "starts with an invisible character (a byte-order mark or a no-break space)",
        }
    }
}

/// The section a comment line would open if it were written as a marker,
/// and what keeps it from being one. A comment by SPEC 2, it would silently
/// make that section's SQL part of the one above (lint rule
/// `indented-marker`).
pub fn marker_lookalike(line: &str) -> Option<(SectionKind, NotAMarker)> {
    const INVISIBLE: [char; 4] = ['\u{feff}', '\u{a0}', '\u{200b}', '\u{2060}'];
    let line = line.trim_end();
    if marker_text(line).is_some() {
        return None;
    }
    let start = line.trim_start_matches(|c: char| c == ' ' || c == '\t' || INVISIBLE.contains(&c));
    let rest = start.strip_prefix("--")?.trim_start_matches(['-', ' ', '\t']);
    let rest = rest.trim_start_matches(INVISIBLE).strip_prefix('@')?;
    let (kind, _, _) = parse_marker(rest).ok()?;
    let why = if start.len() == line.len() {
        NotAMarker::ExtraText
    } else if line.trim_start_matches([' ', '\t']).len() == start.len() {
        NotAMarker::Indented
    } else {
        NotAMarker::Invisible
    };
    Some((kind, why))
}

/// `name [option …] [-- comment]` → section, no-transaction, allowed rules.
fn parse_marker(marker: &str) -> Result<(SectionKind, bool, Vec<String>), String> {
    let (words, comment) = match marker.split_once("--") {
        Some((w, c)) => (w, Some(c)),
        None => (marker, None),
    };
    let mut words = words.split_whitespace();
    let name = words.next().unwrap_or_default();
    let Some(kind) = SectionKind::from_name(name) else {
        let hint = match closest(name, &SectionKind::NAMES) {
            Some(c) => format!("did you mean `-- @{c}`?"),
            None => format!("sections are {}", SectionKind::NAMES.map(|n| format!("`@{n}`")).join(", ")),
        };
        return Err(if name.is_empty() {
            format!("marker without a section name; {hint}")
        } else {
            format!("unknown section `@{name}`; {hint}")
        });
    };
    if marker.starts_with(char::is_whitespace) {
        // SPEC 2 puts the name right after `@`: say so rather than guess.
        return Err(format!("space between `@` and `{name}`; write `-- @{name}`"));
    }
    let mut no_transaction = false;
    for option in words {
        if option == NO_TRANSACTION && no_transaction {
            return Err(format!("option `{option}` twice on `@{name}`; write it once"));
        } else if option == NO_TRANSACTION {
            no_transaction = true;
        } else {
            let hint = match closest(option, &OPTIONS) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!("the only option is `{NO_TRANSACTION}`"),
            };
            return Err(format!("unknown option `{option}` on `@{name}`; {hint}"));
        }
    }
    let allow = comment.map(allowed_rules).unwrap_or_default();
    Ok((kind, no_transaction, allow))
}

/// What follows the `pygrate:allow` directive in a comment's text, if it
/// holds one. Any case, and with spaces around the colon: SQL authors write
/// `-- PYGRATE:ALLOW` as they write keywords, and `-- pygrate: allow` as
/// they write prose; a directive ignored for either would silence nothing
/// without a word.
pub fn after_allow_directive(comment: &str) -> Option<&str> {
    // ASCII lower-casing keeps every byte offset.
    let lower = comment.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower.get(from..).and_then(|rest| rest.find("pygrate")) {
        from += found + "pygrate".len();
        let after = lower.get(from..).unwrap_or_default().trim_start_matches([' ', '\t']);
        let Some(after) = after.strip_prefix(':') else { continue };
        let after = after.trim_start_matches([' ', '\t']);
        if after.starts_with("allow") {
            return comment.get(lower.len() - after.len() + "allow".len()..);
        }
    }
    None
}

/// Rule ids (lower-cased) named by a `pygrate:allow` directive in a
/// comment's text.
pub fn allowed_rules(comment: &str) -> Vec<String> {
    let Some(rest) = after_allow_directive(comment) else {
        return Vec::new();
    };
    rest.split(|c: char| c == ',' || c.is_whitespace())
        .take_while(|w| !w.starts_with("--"))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Line of the first token that is not a comment. `#` lines count as comments
/// too: the file's dialect is not known here and MySQL users write them.
fn first_code_line(preamble: &str) -> Option<usize> {
    // Every `--` line is a comment here, whatever the dialect: MySQL's rule
    // that `--` needs a space after it must not turn a `-----` banner into
    // SQL. MySQL's lexer still accepts `#` lines; line numbers are kept.
    let dashes_blanked: String = preamble
        .split_inclusive('\n')
        .map(|line| {
            if line.trim_start().starts_with("--") {
                &line[line.trim_end_matches(['\n', '\r']).len()..]
            } else {
                line
            }
        })
        .collect();
    for token in Lexer::new(&dashes_blanked, 1, Dialect::Mysql) {
        match token {
            Ok(t)
                if t.kind == TokenKind::Whitespace
                    || t.kind == TokenKind::LineComment
                    || t.kind == TokenKind::BlockComment => {}
            Ok(t) => return Some(t.line),
            Err(e) => return Some(e.line),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Migration, Vec<FileError>> {
        parse(VersionId::new("r1", "v1"), Path::new("r1/v1.sql"), text.as_bytes())
    }

    fn errors(text: &str) -> Vec<String> {
        parse_str(text).err().unwrap_or_default().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn sections_in_any_order_with_options() {
        let m = parse_str(
            "-- header comment\n/* block */\n\n-- @drop\nDROP TABLE x;\n-- @add no-transaction -- pygrate:allow pg-index-concurrently, other\nCREATE INDEX CONCURRENTLY i ON t (a);\n--@rollback_add\nDROP INDEX i;\n",
        )
        .map_err(|e| format!("{e:?}"));
        let Ok(m) = m else { panic!("{m:?}") };
        let add =
            m.section(SectionKind::Add).map(|s| (s.marker_line, s.no_transaction, s.allow.clone(), s.body.clone()));
        assert_eq!(
            add,
            Some((
                6,
                true,
                vec!["pg-index-concurrently".into(), "other".into()],
                "CREATE INDEX CONCURRENTLY i ON t (a);\n".into()
            ))
        );
        assert_eq!(m.section(SectionKind::Drop).map(|s| s.body.as_str()), Some("DROP TABLE x;\n"));
        assert_eq!(m.section(SectionKind::RollbackAdd).map(|s| s.marker_line), Some(8));
        assert!(m.section(SectionKind::Simdrop).is_none());
    }

    /// Without a dialect, only what fails in all three is an error, whichever
    /// dialect is clean: PostgreSQL (a dollar quote), MySQL (a backslash
    /// escape) or none (an unterminated literal, a COMMIT).
    #[test]
    fn errors_in_every_dialect_are_those_all_three_agree_on() {
        let lines = |text: &str| -> Vec<Option<usize>> {
            parse_str(text)
                .map(|m| m.statement_errors_in_every_dialect().iter().map(|e| e.line).collect())
                .unwrap_or_default()
        };
        assert_eq!(lines("-- @add\nSELECT $$it's$$;\n"), []);
        assert_eq!(lines("-- @add\nSELECT 'it\\'s';\n"), []);
        assert_eq!(lines("-- @add\nSELECT 1;\nSELECT 'abc;\n"), [Some(3)]);
        assert_eq!(lines("-- @add\nSELECT 1;\nCOMMIT;\n"), [Some(3)]);
    }

    /// A `no-transaction` section that ends inside a transaction it began
    /// would have pygrate's `applied` row written inside it, to be lost with
    /// it: a format error at the line that began it.
    #[test]
    fn a_no_transaction_section_must_end_its_own_transaction() {
        let statement_errors = |text: &str, dialect| -> Vec<String> {
            parse_str(text)
                .map(|m| m.statement_errors(dialect).iter().map(ToString::to_string).collect())
                .unwrap_or_default()
        };
        let open = "-- @add no-transaction\nINSERT INTO a VALUES (1);\nBEGIN;\nINSERT INTO a VALUES (2);\n";
        assert_eq!(
            statement_errors(open, Dialect::Postgres),
            ["r1/v1.sql:3: a transaction begins here and the section ends inside it: end it with COMMIT"]
        );
        assert_eq!(statement_errors(&format!("{open}COMMIT;\n"), Dialect::Postgres), Vec::<String>::new());
        let locked = "-- @add\nLOCK TABLES a WRITE;\nINSERT INTO a VALUES (1);\nUNLOCK TABLES;\n";
        let errors = statement_errors(locked, Dialect::Mysql);
        assert!(
            errors.len() == 1 && errors[0].starts_with("r1/v1.sql:2: `LOCK TABLES` keeps this session"),
            "{errors:?}"
        );
        assert_eq!(statement_errors(locked, Dialect::Sqlite).len(), 0, "a SQLite error at run time, not pygrate's");
    }

    #[test]
    fn bom_and_crlf_are_accepted_and_do_not_change_checksums() {
        let lf = parse_str("-- @add\nSELECT 1;\n").map(|m| m.section(SectionKind::Add).map(|s| s.checksum.clone()));
        let crlf = parse_str("\u{feff}-- @add\r\nSELECT 1;\r\n")
            .map(|m| m.section(SectionKind::Add).map(|s| s.checksum.clone()));
        assert!(lf.is_ok());
        assert_eq!(lf.ok(), crlf.ok());
    }

    #[test]
    fn format_errors_name_their_lines() {
        assert_eq!(
            errors("-- @add\nSELECT 1;\n-- @simdorp\n"),
            ["r1/v1.sql:3: unknown section `@simdorp`; did you mean `-- @simdrop`?"]
        );
        assert_eq!(
            errors("-- @add nontransaction\n"),
            ["r1/v1.sql:1: unknown option `nontransaction` on `@add`; did you mean `no-transaction`?"]
        );
        assert_eq!(
            errors("-- @add\nSELECT 1;\n-- @drop no-transaction  no-transaction\n"),
            ["r1/v1.sql:3: option `no-transaction` twice on `@drop`; write it once"]
        );
        assert_eq!(
            errors("-- @add\n-- @add\n"),
            ["r1/v1.sql:2: section `@add` appears twice (first at line 1); merge them into one"]
        );
        let e = errors("SELECT 1;\n-- @add\n");
        assert!(e[0].starts_with("r1/v1.sql:1: SQL before the first marker"), "{e:?}");
        let e = errors("-- only comments\n");
        assert!(e[0].starts_with("r1/v1.sql:1: no section marker"), "{e:?}");
        // What hides the only marker is named, at its line.
        let e = errors("-- header\n  -- @add\nSELECT 1;\n");
        assert_eq!(e, ["r1/v1.sql:2: no section marker: this `-- @add` line is indented; write it as `-- @add`, nothing before it"]);
        let e = errors("\u{feff}\u{feff}-- @add\nSELECT 1;\n");
        assert!(
            e[0].starts_with("r1/v1.sql:1: no section marker: this `-- @add` line starts with an invisible"),
            "{e:?}"
        );
        let e = errors("-- header\r-- @add\rSELECT 1;\r");
        assert!(e[0].starts_with("r1/v1.sql:1: carriage return alone, not followed by a line feed"), "{e:?}");
        // One lone CR among LF lines: it would hide a marker, or end a
        // PostgreSQL comment where the splitter and lint saw none.
        let e = errors("-- @add\nCREATE TABLE t (a int);\r-- @rollback_add\nDROP TABLE t;\n");
        assert!(e[0].starts_with("r1/v1.sql:2: carriage return alone"), "{e:?}");
        let e = errors("-- @add\r\nSELECT 1;\r\nCREATE TABLE t1 (a int) -- new\r; DROP TABLE users\n;\n");
        assert!(e[0].starts_with("r1/v1.sql:3: carriage return alone"), "{e:?}");
        assert!(errors("-- @add\r\nSELECT 1;\r\n\r\n").is_empty());
        let e = errors("-- @add\nx\n-- @rollback_simdrop\ny\n");
        assert!(e[0].starts_with("r1/v1.sql:3: `@rollback_simdrop` without an `@simdrop`"), "{e:?}");
        let e = errors("-- @ add\nSELECT 1;\n");
        assert_eq!(e, ["r1/v1.sql:1: space between `@` and `add`; write `-- @add`"]);
        let e = errors("-- @\n");
        assert!(e[0].starts_with("r1/v1.sql:1: marker without a section name"), "{e:?}");
    }

    #[test]
    fn not_utf8_names_the_line() {
        let e =
            parse(VersionId::new("r", "v"), Path::new("v.sql"), b"-- @add\nSELECT '\xff';\n").err().unwrap_or_default();
        assert_eq!(e.len(), 1);
        assert!(e[0].to_string().starts_with("v.sql:2: file is not valid UTF-8"), "{e:?}");
    }

    #[test]
    fn a_nul_byte_is_an_error_at_its_line() {
        let e = parse(VersionId::new("r", "v"), Path::new("v.sql"), b"-- @add\nDELETE FROM t \0WHERE x = 1;\n")
            .err()
            .unwrap_or_default();
        assert_eq!(e.len(), 1);
        assert!(e[0].to_string().starts_with("v.sql:2: file holds a NUL byte"), "{e:?}");
    }

    /// Before the first marker every `--` line is a comment, banners too
    /// (MySQL's lexer reads `-----` as code), and so are MySQL's `#` lines.
    #[test]
    fn the_preamble_takes_any_dash_or_hash_comment() {
        assert!(parse_str("------ header ------\n  --x\n# note\n/* c */\n-- @add\nSELECT 1;\n").is_ok());
        let e = errors("-- fine\n\nSELECT 1;\n-- @add\n");
        assert!(e[0].starts_with("r1/v1.sql:3: SQL before the first marker"), "{e:?}");
    }

    #[test]
    fn a_comment_mentioning_a_marker_is_not_one() {
        let m = parse_str("-- @add\n--- @drop is later\n  -- @drop indented is SQL text\n--- @drop\n");
        assert!(m.is_ok(), "{m:?}");
    }

    #[test]
    fn a_marker_lookalike_is_recognised_for_the_lint() {
        let kind = |line| marker_lookalike(line).map(|(kind, _)| kind);
        assert_eq!(kind("  -- @rollback_add"), Some(SectionKind::RollbackAdd));
        assert_eq!(kind("\t--@drop no-transaction\r"), Some(SectionKind::Drop));
        assert_eq!(kind("-- @drop"), None, "not indented: a marker");
        assert_eq!(kind("  -- @drop is later"), None, "not a marker's grammar");
        assert_eq!(kind("  SELECT 1; -- @drop"), None);
        // Extra dashes and invisible characters hid markers as well.
        assert_eq!(marker_lookalike("--- @drop"), Some((SectionKind::Drop, NotAMarker::ExtraText)));
        assert_eq!(kind("-- -@drop"), Some(SectionKind::Drop));
        assert_eq!(kind("  --- @drop"), Some(SectionKind::Drop));
        assert_eq!(
            marker_lookalike("\u{feff}-- @rollback_add"),
            Some((SectionKind::RollbackAdd, NotAMarker::Invisible))
        );
        assert_eq!(marker_lookalike("  -- @add"), Some((SectionKind::Add, NotAMarker::Indented)));
        assert_eq!(kind("--\u{a0}@simdrop"), Some(SectionKind::Simdrop));
        assert_eq!(kind("--- @drop is later"), None);
        assert_eq!(kind("------ header ------"), None);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Lines that exercise markers, options, allow comments, BOMs and CRLF.
        const LINES: &[&str] = &[
            "-- @add\n",
            "--@drop\r\n",
            "-- @simdrop no-transaction\n",
            "-- @rollback_add -- pygrate:allow pg-index-concurrently\n",
            "-- @rollback_simdrop\n",
            "-- @simdorp\n",
            "-- @add nontransaction\n",
            "-- @\n",
            "-- @add",
            "--- @drop is a comment\n",
            "SELECT 1;\n",
            "CREATE TABLE t (a int);\r\n",
            "/* block\n",
            "'it''s\n",
            "-- comment\n",
            "\n",
            "\u{feff}",
            "\u{e9}t\u{e9}\n",
        ];

        fn file_like() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                any::<Vec<u8>>(),
                any::<String>().prop_map(String::into_bytes),
                prop::collection::vec(prop::sample::select(LINES), 0..30).prop_map(|l| l.concat().into_bytes()),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

            /// Never panics; errors name a line of the file; a parsed file is
            /// exactly its preamble plus each marker line and its body.
            #[test]
            fn never_panics_and_loses_nothing(bytes in file_like()) {
                let lines_in_file = bytes.iter().filter(|b| **b == b'\n').count() + 1;
                match parse(VersionId::new("r", "v"), Path::new("v.sql"), &bytes) {
                    Err(errors) => {
                        prop_assert!(!errors.is_empty());
                        for e in &errors {
                            prop_assert!(e.line.is_some_and(|l| l >= 1 && l <= lines_in_file), "{e} of {lines_in_file} lines");
                        }
                    }
                    Ok(m) => {
                        let text = std::str::from_utf8(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
                        let lines: Vec<&str> = text.split_inclusive('\n').collect();
                        let mut sections: Vec<&Section> = m.sections().collect();
                        sections.sort_by_key(|s| s.marker_line);
                        let first = sections.first().map_or(0, |s| s.marker_line - 1);
                        let mut rebuilt = lines[..first].concat();
                        for s in sections {
                            rebuilt.push_str(lines[s.marker_line - 1]);
                            rebuilt.push_str(&s.body);
                            prop_assert_eq!(&s.checksum, &section_checksum(&s.body));
                        }
                        prop_assert_eq!(rebuilt, text);
                    }
                }
            }
        }
    }
}
