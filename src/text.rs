//! Small text helpers shared by messages.

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The candidate closest to `word`, when it is close enough to be a typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(&word.to_ascii_lowercase(), c), *c))
        .min()
        .filter(|(d, c)| *d <= c.len().max(word.len()) / 2 + 1)
        .map(|(_, c)| c)
}

/// One line, at most `max` chars, for quoting a statement in a message.
pub fn shorten(sql: &str, max: usize) -> String {
    let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut s: String = flat.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// A duration as people write it: `250ms`, `1.5s`, `2s`, `1m30s`, `2h`.
/// Below a second in whole milliseconds, below a minute to a tenth of a
/// second, above that in whole seconds.
pub fn duration(d: std::time::Duration) -> String {
    let millis = d.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let tenths = (millis + 50) / 100;
    if tenths < 600 {
        return match tenths % 10 {
            0 => format!("{}s", tenths / 10),
            tenth => format!("{}.{tenth}s", tenths / 10),
        };
    }
    let seconds = (millis + 500) / 1000;
    let parts = [(seconds / 3600, "h"), (seconds / 60 % 60, "m"), (seconds % 60, "s")];
    parts.iter().filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n}{unit}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        let ms = |n| duration(std::time::Duration::from_millis(n));
        assert_eq!(ms(0), "0ms");
        assert_eq!(ms(250), "250ms");
        assert_eq!(ms(999), "999ms");
        assert_eq!(ms(1000), "1s");
        assert_eq!(ms(1500), "1.5s");
        assert_eq!(ms(2000), "2s");
        assert_eq!(ms(2001), "2s");
        assert_eq!(ms(59_960), "1m");
        assert_eq!(ms(90_000), "1m30s");
        assert_eq!(ms(7_200_000), "2h");
        assert_eq!(ms(3_605_000), "1h5s");
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("add", "add"), 0);
        assert_eq!(edit_distance("simdorp", "simdrop"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("rollbak_add", &["add", "rollback_add"]), Some("rollback_add"));
        assert_eq!(closest("zzzzzzzzz", &["add", "drop"]), None);
    }

    #[test]
    fn shortening() {
        assert_eq!(shorten("SELECT\n  1", 80), "SELECT 1");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}
