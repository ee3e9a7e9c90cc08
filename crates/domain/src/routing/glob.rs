//! Event-type globs. `*` matches any run of characters, dots included, so `session.*`
//! takes `session.status_idled` and `*` takes everything; a leading `!` excludes. A set
//! matches when some positive pattern matches and no exclusion does.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("event type pattern must not be empty")]
    Empty,
    #[error("event type pattern {0:?} is longer than 200 characters")]
    TooLong(String),
    #[error("event type pattern {0:?} has a control character or whitespace")]
    BadCharacter(String),
    #[error("event_types needs at least one pattern that is not an exclusion")]
    NoPositive,
    #[error("event_types takes at most 50 patterns")]
    TooMany,
}

/// One pattern, without its `!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn parse(pattern: &str) -> Result<Self, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.chars().count() > 200 {
            return Err(GlobError::TooLong(pattern.to_owned()));
        }
        if pattern.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(GlobError::BadCharacter(pattern.to_owned()));
        }
        Ok(Glob(pattern.to_owned()))
    }

    /// Greedy wildcard match with single backtrack point: linear in practice, never
    /// exponential whatever the pattern.
    pub fn matches(&self, text: &str) -> bool {
        let (p, t) = (self.0.as_bytes(), text.as_bytes());
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && p[pi] == b'*' {
                star = Some((pi, ti));
                pi += 1;
            } else if pi < p.len() && p[pi] == t[ti] {
                pi += 1;
                ti += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A route's `event_types`: positive patterns and `!` exclusions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypes {
    include: Vec<Glob>,
    exclude: Vec<Glob>,
}

impl EventTypes {
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, GlobError> {
        if patterns.len() > 50 {
            return Err(GlobError::TooMany);
        }
        let (mut include, mut exclude) = (Vec::new(), Vec::new());
        for pattern in patterns {
            match pattern.as_ref().strip_prefix('!') {
                Some(excluded) => exclude.push(Glob::parse(excluded)?),
                None => include.push(Glob::parse(pattern.as_ref())?),
            }
        }
        if include.is_empty() {
            return Err(GlobError::NoPositive);
        }
        Ok(EventTypes { include, exclude })
    }

    /// An event without a type matches only a route that takes everything (`*`).
    pub fn matches(&self, event_type: Option<&str>) -> bool {
        let t = event_type.unwrap_or("");
        if event_type.is_none() && !self.include.iter().any(|g| g.0.bytes().all(|c| c == b'*')) {
            return false;
        }
        self.include.iter().any(|g| g.matches(t)) && !self.exclude.iter().any(|g| g.matches(t))
    }

    /// The patterns as stored, exclusions with their `!`.
    pub fn to_strings(&self) -> Vec<String> {
        let include = self.include.iter().map(ToString::to_string);
        let exclude = self.exclude.iter().map(|g| format!("!{g}"));
        include.chain(exclude).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> EventTypes {
        EventTypes::parse(patterns).unwrap()
    }

    #[test]
    fn glob_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "anything.at.all", true),
            ("*", "", true),
            ("session.*", "session.status_idled", true),
            ("session.*", "session.thread.created", true),
            ("session.*", "sessions.x", false),
            ("session.*", "session", false),
            ("issues.opened", "issues.opened", true),
            ("issues.opened", "issues.opened2", false),
            ("*.opened", "pull_request.opened", true),
            ("*.opened", "pull_request.closed", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            (
                "vault_credential.*_failed",
                "vault_credential.refresh_failed",
                true,
            ),
            ("**", "x", true),
        ];
        for &(pattern, text, want) in cases {
            assert_eq!(
                Glob::parse(pattern).unwrap().matches(text),
                want,
                "{pattern} ~ {text}"
            );
        }
    }

    #[test]
    fn exclusions_win_over_inclusions() {
        let types = set(&["session.*", "!session.updated"]);
        assert!(types.matches(Some("session.status_idled")));
        assert!(!types.matches(Some("session.updated")));
        assert!(!types.matches(Some("agent.created")));
    }

    #[test]
    fn an_untyped_event_matches_only_a_catch_all() {
        assert!(set(&["*"]).matches(None));
        assert!(!set(&["session.*"]).matches(None));
    }

    #[test]
    fn bad_pattern_sets_are_refused() {
        assert_eq!(EventTypes::parse::<&str>(&[]), Err(GlobError::NoPositive));
        assert_eq!(EventTypes::parse(&["!a"]), Err(GlobError::NoPositive));
        assert_eq!(EventTypes::parse(&[""]), Err(GlobError::Empty));
        assert!(matches!(
            EventTypes::parse(&["a b"]),
            Err(GlobError::BadCharacter(_))
        ));
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let pattern = Glob::parse(&"*a".repeat(100)).unwrap();
        let text = "a".repeat(99) + "b";
        assert!(!pattern.matches(&text));
    }

    #[test]
    fn patterns_round_trip() {
        assert_eq!(set(&["a.*", "!a.b"]).to_strings(), vec!["a.*", "!a.b"]);
    }
}
