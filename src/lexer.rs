//! The crate's one SQL lexer. It only needs to know where literals, quoted
//! identifiers and comments begin and end, so that the splitter and the linter
//! never mistake their contents for code; it does not validate SQL.
//!
//! Tokens borrow from the input and carry their byte offset and 1-based line.
//! The lexer never panics: it only ever cuts the input right after an ASCII
//! byte or at the end of a whole char, so every slice is on a char boundary.

use std::fmt;
use std::iter::FusedIterator;
use std::ops::Range;

use crate::dialect::Dialect;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Keyword or identifier (`[A-Za-z_]` or any non-ASCII char, then also
    /// digits and `$`), and parameters such as `$1` or `$name`.
    Word,
    /// `"…"` (except in MySQL, see [`TokenKind::String`]) and `` `…` ``.
    QuotedIdent,
    /// `'…'` with its `E`/`X`/`N`/`B` prefix, a `$tag$…$tag$` dollar quote,
    /// and in MySQL also `"…"`: with MySQL's default `sql_mode` it is a string.
    String,
    Number,
    /// Any other single char (always ASCII: non-ASCII chars are word chars).
    Punct,
    /// `-- …` (and `# …` in MySQL), without the line break.
    LineComment,
    /// `/* … */`.
    BlockComment,
    /// MySQL's `/*! … */` and MariaDB's `/*M! … */`: code, not a comment, as
    /// the server runs its text. One token: the splitter never cuts inside.
    ExecutableComment,
    /// A run of ASCII whitespace (space, `\t`, `\n`, `\r`, `\x0b`, `\x0c`).
    Whitespace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokenKind,
    pub text: &'a str,
    /// Byte offset of the token in the lexed text.
    pub start: usize,
    /// Line of the token's first char, counting from the lexer's `first_line`.
    pub line: usize,
}

impl<'a> Token<'a> {
    /// Byte offset just past the token.
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }

    pub fn span(&self) -> Range<usize> {
        self.start..self.end()
    }

    /// Neither whitespace nor a comment.
    pub fn is_code(&self) -> bool {
        !matches!(self.kind, TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment)
    }

    pub fn is_comment(&self) -> bool {
        matches!(self.kind, TokenKind::LineComment | TokenKind::BlockComment)
    }

    /// A word equal to `keyword`, ignoring ASCII case.
    pub fn is_word(&self, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(keyword)
    }

    /// A word equal to one of `keywords`, ignoring ASCII case.
    pub fn is_any_word(&self, keywords: &[&str]) -> bool {
        keywords.iter().any(|k| self.is_word(k))
    }

    /// A punctuation char is one ASCII byte, so one byte is compared.
    #[inline]
    pub fn is_punct(&self, c: char) -> bool {
        self.kind == TokenKind::Punct && c.is_ascii() && self.text.as_bytes() == [c as u8]
    }
}

/// An unterminated literal, quoted identifier or comment (or, from the
/// splitter, a malformed `DELIMITER` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    /// Line where the offending construct starts.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for LexError {}

/// Iterates over the tokens of `text`; after an error it yields nothing more.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    dialect: Dialect,
    done: bool,
}

impl<'a> Lexer<'a> {
    /// `first_line` is the line number of `text`'s first line.
    pub fn new(text: &'a str, first_line: usize, dialect: Dialect) -> Self {
        Lexer { text, pos: 0, line: first_line, dialect, done: false }
    }

    /// Byte offset of the next token.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Line of the next token.
    pub fn line(&self) -> usize {
        self.line
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Continues lexing at byte `pos`, keeping line numbers right. The splitter
    /// needs this for custom delimiters, which may start inside a word
    /// (`END$$`) or span several tokens (`//`). A `pos` that is not a char
    /// boundary of the text is ignored.
    pub(crate) fn seek(&mut self, pos: usize) {
        if !self.text.is_char_boundary(pos) {
            debug_assert!(false, "seek to {pos} is not a char boundary");
            return;
        }
        let (from, to) = (self.pos.min(pos), self.pos.max(pos));
        let newlines = count_newlines(self.text.get(from..to).unwrap_or_default());
        if pos < self.pos {
            self.line = self.line.saturating_sub(newlines);
        } else {
            self.line += newlines;
        }
        self.pos = pos;
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.text.as_bytes().get(at).copied()
    }

    fn error(&self, what: &str, opener: &str) -> LexError {
        LexError { line: self.line, message: format!("unterminated {what} (opened with {opener} here)") }
    }

    /// Kind and end offset of the token starting at `self.pos` with byte `first`.
    fn scan_token(&self, first: u8) -> Result<(TokenKind, usize), LexError> {
        let start = self.pos;
        let next = self.byte(start + 1);
        let dialect = self.dialect;
        Ok(match first {
            b if is_space(b) => (TokenKind::Whitespace, self.skip_while(start, is_space)),
            b'-' if next == Some(b'-')
                && (!dialect.dash_comments_need_space()
                    || self.byte(start + 2).is_none_or(|b| b.is_ascii_whitespace() || b.is_ascii_control())) =>
            {
                (TokenKind::LineComment, self.line_comment_end(start))
            }
            b'#' if dialect.hash_comments() => (TokenKind::LineComment, self.line_comment_end(start)),
            b'/' if next == Some(b'*') => match self.block_comment_end(start) {
                Some(end)
                    if dialect.executable_comments()
                        && self
                            .text
                            .get(start + 2..)
                            .is_some_and(|rest| rest.starts_with('!') || rest.starts_with("M!")) =>
                {
                    (TokenKind::ExecutableComment, end)
                }
                Some(end) => (TokenKind::BlockComment, end),
                None => return Err(self.error("block comment", "/*")),
            },
            b'\'' => (TokenKind::String, self.quoted(start, start, dialect.backslash_escapes(), "string literal")?),
            b'"' if dialect == Dialect::Mysql => {
                (TokenKind::String, self.quoted(start, start, true, "string literal")?)
            }
            b'"' => (TokenKind::QuotedIdent, self.quoted(start, start, false, "quoted identifier")?),
            b'`' => (TokenKind::QuotedIdent, self.quoted(start, start, false, "quoted identifier")?),
            // SQLite also takes SQL Server's `[name]`; it holds no `]`.
            b'[' if dialect == Dialect::Sqlite => match self.text.get(start..).and_then(|rest| rest.find(']')) {
                Some(close) => (TokenKind::QuotedIdent, start + close + 1),
                None => return Err(self.error("quoted identifier", "[")),
            },
            b'E' | b'e' | b'X' | b'x' | b'N' | b'n' | b'B' | b'b' if next == Some(b'\'') => {
                // Only PostgreSQL's E'…' turns on escapes the dialect lacks.
                let escapes =
                    dialect.backslash_escapes() || (dialect == Dialect::Postgres && first.eq_ignore_ascii_case(&b'e'));
                (TokenKind::String, self.quoted(start, start + 1, escapes, "string literal")?)
            }
            b'$' => match self.dollar_opener_end(start) {
                Some(open_end) => (TokenKind::String, self.dollar_quote_end(start, open_end)?),
                // `$1`, `$name`: parameters.
                None if next.is_some_and(is_word_byte) => (TokenKind::Word, self.skip_while(start + 1, is_word_byte)),
                None => (TokenKind::Punct, start + 1),
            },
            b if b.is_ascii_digit() => (TokenKind::Number, self.number_end(start)),
            b'.' if next.is_some_and(|b| b.is_ascii_digit()) => (TokenKind::Number, self.number_end(start)),
            b if b.is_ascii_alphabetic() || b == b'_' || !b.is_ascii() => {
                (TokenKind::Word, self.skip_while(start, is_word_byte))
            }
            // `first` is ASCII here, so one byte is one whole char.
            _ => (TokenKind::Punct, start + 1),
        })
    }

    /// First offset at or after `from` whose byte fails `keep`. Non-ASCII bytes
    /// are either all kept or stop at a char's first byte, so the result is
    /// always a char boundary.
    fn skip_while(&self, from: usize, keep: fn(u8) -> bool) -> usize {
        let rest = self.text.as_bytes().get(from..).unwrap_or_default();
        from + rest.iter().position(|&b| !keep(b)).unwrap_or(rest.len())
    }

    /// Up to the line break; a `\r` of a CRLF break is not part of the comment.
    fn line_comment_end(&self, start: usize) -> usize {
        let rest = self.text.get(start..).unwrap_or_default();
        match rest.find('\n') {
            Some(i) if i > 0 && rest.as_bytes().get(i - 1) == Some(&b'\r') => start + i - 1,
            Some(i) => start + i,
            None => self.text.len(),
        }
    }

    fn block_comment_end(&self, start: usize) -> Option<usize> {
        let nested = self.dialect.nested_block_comments();
        let mut depth = 1usize;
        let mut i = start + 2;
        loop {
            match (self.byte(i)?, self.byte(i + 1)) {
                (b'*', Some(b'/')) => {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                (b'/', Some(b'*')) if nested => {
                    depth += 1;
                    i += 2;
                }
                _ => i += 1,
            }
        }
    }

    /// End of a literal whose quote char is at `quote_at` (after any prefix
    /// starting at `start`); a doubled quote char stands for itself.
    fn quoted(&self, start: usize, quote_at: usize, escapes: bool, what: &str) -> Result<usize, LexError> {
        let bytes = self.text.as_bytes();
        let Some(&quote) = bytes.get(quote_at) else {
            return Err(self.error(what, "?"));
        };
        let mut i = quote_at + 1;
        while let Some(&b) = bytes.get(i) {
            if escapes && b == b'\\' {
                // Skipping one byte past a backslash may land inside a
                // multi-byte char; harmless, as only ASCII bytes are compared.
                i += 2;
            } else if b == quote {
                if bytes.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return Ok(i + 1);
                }
            } else {
                i += 1;
            }
        }
        let opener = self.text.get(start..=quote_at).unwrap_or_default();
        Err(self.error(what, opener))
    }

    /// End of a `$tag$` opener at `start`, if there is one there.
    fn dollar_opener_end(&self, start: usize) -> Option<usize> {
        if !self.dialect.dollar_quotes() {
            return None;
        }
        let tag_start = start + 1;
        let tag_end = match self.byte(tag_start)? {
            b'$' => tag_start,
            b if b.is_ascii_alphabetic() || b == b'_' => {
                self.skip_while(tag_start, |b| b.is_ascii_alphanumeric() || b == b'_')
            }
            _ => return None,
        };
        (self.byte(tag_end)? == b'$').then_some(tag_end + 1)
    }

    fn dollar_quote_end(&self, start: usize, open_end: usize) -> Result<usize, LexError> {
        let opener = self.text.get(start..open_end).unwrap_or_default();
        let body = self.text.get(open_end..).unwrap_or_default();
        match body.find(opener) {
            Some(i) => Ok(open_end + i + opener.len()),
            None => Err(self.error("dollar-quoted string", opener)),
        }
    }

    /// Digits, a fraction, an exponent, then any identifier chars glued on
    /// (`0x1F`, `1abc`): the splitter only needs to know it is not a keyword.
    fn number_end(&self, start: usize) -> usize {
        let digit = |b: u8| b.is_ascii_digit();
        let mut i = self.skip_while(start, digit);
        if self.byte(i) == Some(b'.') {
            i = self.skip_while(i + 1, digit);
        }
        if matches!(self.byte(i), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(self.byte(i + 1), Some(b'+' | b'-')));
            if self.byte(i + 1 + sign).is_some_and(digit) {
                i = self.skip_while(i + 1 + sign, digit);
            }
        }
        self.skip_while(i, |b| b.is_ascii_alphanumeric() || b == b'_')
    }
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Result<Token<'a>, LexError>;

    // Inlined into its callers, the token never goes through memory: the
    // splitter spent two thirds of its time copying it (BENCHMARKS.md, History).
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let Some(first) = self.byte(self.pos) else {
            self.done = true;
            return None;
        };
        let start = self.pos;
        let (kind, end) = match self.scan_token(first) {
            Ok(scanned) => scanned,
            Err(e) => {
                self.done = true;
                return Some(Err(e));
            }
        };
        // Every scanner consumes at least one whole char; guard anyway so that
        // a bug can never turn into a panic or an endless loop.
        let Some(text) = self.text.get(start..end).filter(|t| !t.is_empty()) else {
            debug_assert!(false, "bad token bounds {start}..{end}");
            self.done = true;
            return None;
        };
        let token = Token { kind, text, start, line: self.line };
        // Words, numbers, punctuation and line comments hold no line break.
        if !matches!(kind, TokenKind::Word | TokenKind::Number | TokenKind::Punct | TokenKind::LineComment) {
            self.line += count_newlines(text);
        }
        self.pos = end;
        Some(Ok(token))
    }
}

impl FusedIterator for Lexer<'_> {}

/// ASCII whitespace, including the vertical tab that `u8::is_ascii_whitespace` omits.
fn is_space(b: u8) -> bool {
    b.is_ascii_whitespace() || b == 0x0b
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || !b.is_ascii()
}

fn count_newlines(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use TokenKind::*;

    const DIALECTS: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql];

    /// (kind, text, line) of every token; panics on a lex error.
    fn lex(text: &str, dialect: Dialect) -> Vec<(TokenKind, &str, usize)> {
        Lexer::new(text, 1, dialect)
            .map(|t| t.map(|t| (t.kind, t.text, t.line)))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    /// Like `lex`, without whitespace.
    fn code(text: &str, dialect: Dialect) -> Vec<(TokenKind, &str, usize)> {
        lex(text, dialect).into_iter().filter(|t| t.0 != Whitespace).collect()
    }

    fn lex_error(text: &str, dialect: Dialect) -> LexError {
        let mut lexer = Lexer::new(text, 10, dialect);
        let error = lexer.by_ref().find_map(Result::err).unwrap_or_else(|| panic!("{text:?} lexed"));
        assert_eq!(lexer.next(), None, "the lexer stops after an error");
        error
    }

    #[test]
    fn words_numbers_punct_and_lines() {
        assert_eq!(
            lex("SELECT a_1, $x\n  FROM t2 WHERE n >= 1.5e-3;", Dialect::Sqlite),
            vec![
                (Word, "SELECT", 1),
                (Whitespace, " ", 1),
                (Word, "a_1", 1),
                (Punct, ",", 1),
                (Whitespace, " ", 1),
                (Word, "$x", 1),
                (Whitespace, "\n  ", 1),
                (Word, "FROM", 2),
                (Whitespace, " ", 2),
                (Word, "t2", 2),
                (Whitespace, " ", 2),
                (Word, "WHERE", 2),
                (Whitespace, " ", 2),
                (Word, "n", 2),
                (Whitespace, " ", 2),
                (Punct, ">", 2),
                (Punct, "=", 2),
                (Whitespace, " ", 2),
                (Number, "1.5e-3", 2),
                (Punct, ";", 2),
            ]
        );
        assert_eq!(code(".5 0x1F 7e", Dialect::Mysql), vec![(Number, ".5", 1), (Number, "0x1F", 1), (Number, "7e", 1)]);
    }

    #[test]
    fn first_line_offsets_lines_and_crlf_counts_by_newline() {
        let tokens: Vec<_> =
            Lexer::new("a\r\n-- c\r\nb", 41, Dialect::Sqlite).map(|t| t.map(|t| (t.kind, t.text, t.line))).collect();
        assert_eq!(
            tokens,
            vec![
                Ok((Word, "a", 41)),
                Ok((Whitespace, "\r\n", 41)),
                Ok((LineComment, "-- c", 42)),
                Ok((Whitespace, "\r\n", 42)),
                Ok((Word, "b", 43)),
            ]
        );
    }

    #[test]
    fn non_ascii_is_word_and_never_split() {
        assert_eq!(
            code("é;ü€ '日本' \"ß\" x·y", Dialect::Postgres),
            vec![
                (Word, "é", 1),
                (Punct, ";", 1),
                (Word, "ü€", 1),
                (String, "'日本'", 1),
                (QuotedIdent, "\"ß\"", 1),
                (Word, "x·y", 1)
            ]
        );
    }

    #[test]
    fn strings_double_quotes_and_prefixes() {
        assert_eq!(code("'a;''b' x", Dialect::Sqlite), vec![(String, "'a;''b'", 1), (Word, "x", 1)]);
        assert_eq!(
            code("E'a\\'b' e'' X'1F' n'x' B'01' ex", Dialect::Postgres),
            [
                (String, "E'a\\'b'", 1),
                (String, "e''", 1),
                (String, "X'1F'", 1),
                (String, "n'x'", 1),
                (String, "B'01'", 1),
                (Word, "ex", 1)
            ]
        );
        // `ex` is a word, so its quote opens an unterminated literal.
        assert_eq!(lex_error("ex'", Dialect::Postgres).line, 10);
    }

    #[test]
    fn backslash_escapes_only_in_mysql_and_postgres_e_strings() {
        // PostgreSQL and SQLite: a backslash is an ordinary char.
        for dialect in [Dialect::Postgres, Dialect::Sqlite] {
            assert_eq!(code("'a\\', 'b'", dialect), vec![(String, "'a\\'", 1), (Punct, ",", 1), (String, "'b'", 1)]);
        }
        assert_eq!(
            code("'it\\'s;' \"q\\\"\"", Dialect::Mysql),
            vec![(String, "'it\\'s;'", 1), (String, "\"q\\\"\"", 1)]
        );
        assert_eq!(lex_error("'a\\'", Dialect::Mysql).line, 10);
    }

    #[test]
    fn quoted_identifiers() {
        assert_eq!(
            code("\"a\"\"b\" `c``d;`", Dialect::Postgres),
            vec![(QuotedIdent, "\"a\"\"b\"", 1), (QuotedIdent, "`c``d;`", 1)]
        );
        // In MySQL "…" is a string (default sql_mode), backticks stay identifiers.
        assert_eq!(code("\"a\" `b`", Dialect::Mysql), vec![(String, "\"a\"", 1), (QuotedIdent, "`b`", 1)]);
        // SQLite's brackets; elsewhere `[` is punctuation (PostgreSQL arrays).
        assert_eq!(code("[a;\nb] x", Dialect::Sqlite), vec![(QuotedIdent, "[a;\nb]", 1), (Word, "x", 2)]);
        assert_eq!(
            code("a[1]", Dialect::Postgres),
            vec![(Word, "a", 1), (Punct, "[", 1), (Number, "1", 1), (Punct, "]", 1)]
        );
    }

    #[test]
    fn comments() {
        assert_eq!(
            lex("a -- x; 'y\nb /* c;\n d */", Dialect::Sqlite),
            vec![
                (Word, "a", 1),
                (Whitespace, " ", 1),
                (LineComment, "-- x; 'y", 1),
                (Whitespace, "\n", 1),
                (Word, "b", 2),
                (Whitespace, " ", 2),
                (BlockComment, "/* c;\n d */", 2),
            ]
        );
        assert_eq!(code("--", Dialect::Sqlite), vec![(LineComment, "--", 1)]);
        assert_eq!(code("# x\ny", Dialect::Mysql), vec![(LineComment, "# x", 1), (Word, "y", 2)]);
        // MySQL wants a space or control char after `--`; elsewhere none is needed.
        assert_eq!(
            code("5--1", Dialect::Mysql),
            vec![(Number, "5", 1), (Punct, "-", 1), (Punct, "-", 1), (Number, "1", 1)]
        );
        assert_eq!(code("5--1", Dialect::Postgres), vec![(Number, "5", 1), (LineComment, "--1", 1)]);
        for text in ["-- x", "--\tx", "--\r\nx", "--\nx", "--"] {
            assert_eq!(code(text, Dialect::Mysql).first().map(|t| t.0), Some(LineComment), "{text:?}");
        }
        assert_eq!(code("# x", Dialect::Postgres), vec![(Punct, "#", 1), (Word, "x", 1)]);
    }

    #[test]
    fn block_comments_nest_only_in_postgres() {
        let text = "/* a /* b */ c */ d";
        assert_eq!(code(text, Dialect::Postgres), vec![(BlockComment, "/* a /* b */ c */", 1), (Word, "d", 1)]);
        assert_eq!(code(text, Dialect::Sqlite)[..2], [(BlockComment, "/* a /* b */", 1), (Word, "c", 1)]);
        assert_eq!(code("/*/ x */", Dialect::Postgres), vec![(BlockComment, "/*/ x */", 1)]);
        let error = lex_error("x\n/* a /* b */\n", Dialect::Postgres);
        assert_eq!(error, LexError { line: 11, message: "unterminated block comment (opened with /* here)".into() });
    }

    #[test]
    fn dollar_quotes() {
        assert_eq!(
            code("$$a;'b$$ $fn$ x $$ y;\n $fn$ $1 a$b$ $", Dialect::Postgres),
            vec![
                (String, "$$a;'b$$", 1),
                (String, "$fn$ x $$ y;\n $fn$", 1),
                (Word, "$1", 2),
                (Word, "a$b$", 2),
                (Punct, "$", 2),
            ]
        );
        // Tags are case-sensitive.
        assert_eq!(
            lex_error("\n$A$ x $a$", Dialect::Postgres).message,
            "unterminated dollar-quoted string (opened with $A$ here)"
        );
        assert_eq!(lex_error("\n$A$ x $a$", Dialect::Postgres).line, 11);
        // Not a quote outside PostgreSQL.
        assert_eq!(code("$$ x $$", Dialect::Mysql), vec![(Word, "$$", 1), (Word, "x", 1), (Word, "$$", 1)]);
    }

    #[test]
    fn unterminated_errors_point_at_the_opening_line() {
        let cases = [
            ("a\n'b\n\n", "unterminated string literal (opened with ' here)"),
            ("a\nE'b\\'", "unterminated string literal (opened with E' here)"),
            ("a\n\"b", "unterminated quoted identifier (opened with \" here)"),
            ("a\n`b``", "unterminated quoted identifier (opened with ` here)"),
        ];
        for (text, message) in cases {
            assert_eq!(lex_error(text, Dialect::Postgres), LexError { line: 11, message: message.into() }, "{text:?}");
        }
        assert_eq!(lex_error("a\n\"b", Dialect::Mysql).message, "unterminated string literal (opened with \" here)");
        assert_eq!(
            lex_error("'", Dialect::Sqlite).to_string(),
            "line 10: unterminated string literal (opened with ' here)"
        );
    }

    #[test]
    fn token_helpers() {
        let tokens: Vec<Token<'_>> = Lexer::new("begin; -- c", 1, Dialect::Sqlite).flatten().collect();
        assert!(tokens[0].is_word("BEGIN") && tokens[0].is_code() && tokens[0].is_any_word(&["END", "Begin"]));
        assert!(tokens[1].is_punct(';') && !tokens[1].is_word(";"));
        assert!(!tokens[3].is_code() && tokens[3].is_comment());
        assert_eq!((tokens[3].span(), tokens[3].end()), (7..11, 11));
    }

    const VOCABULARY: &[&str] = &[
        "'", "\"", "`", "--", "#", "/*", "*/", "$$", "$a$", "$1", ";", "\n", "\r\n", " ", "\\", "''", "E'", "x",
        "1.5e", ".", "é", "日本", "BEGIN", "END", "CASE",
    ];

    fn sql_like() -> impl Strategy<Value = std::string::String> {
        prop_oneof![
            any::<std::string::String>(),
            prop::collection::vec(prop::sample::select(VOCABULARY), 0..30).prop_map(|parts| parts.concat()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Tokens tile the input up to the first error, with exact line numbers.
        #[test]
        fn tokens_tile_the_input(text in sql_like(), first_line in 1usize..1000) {
            for dialect in DIALECTS {
                let mut end = 0;
                for token in Lexer::new(&text, first_line, dialect) {
                    match token {
                        Ok(t) => {
                            prop_assert_eq!(t.start, end);
                            prop_assert!(!t.text.is_empty());
                            prop_assert_eq!(Some(t.text), text.get(t.span()));
                            prop_assert_eq!(t.line, first_line + count_newlines(&text[..t.start]));
                            end = t.end();
                        }
                        Err(e) => {
                            prop_assert!(e.line >= first_line);
                            end = text.len();
                        }
                    }
                }
                prop_assert_eq!(end, text.len());
            }
        }
    }
}
