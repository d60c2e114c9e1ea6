//! `ssl.principal.mapping.rules`: Kafka's `SslPrincipalMapper`. A list of
//! `RULE:pattern/replacement/[LU]` and `DEFAULT`, tried in order; the
//! first rule whose pattern matches the whole DN gives the name (`$1`
//! groups substituted, then lower- or upper-cased), `DEFAULT` gives the DN
//! unchanged. No rule matching is an error: the connection is refused.

use regex::Regex;

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl Default for PrincipalMapper {
    fn default() -> PrincipalMapper {
        PrincipalMapper {
            rules: vec![Rule::Default],
        }
    }
}

impl PrincipalMapper {
    pub fn parse(rules: &str) -> Result<PrincipalMapper, String> {
        let mut parsed = Vec::new();
        let mut rest = rules.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                parsed.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .ok_or_else(|| format!("rule without `/` after its pattern: {rest}"))?;
                let (replacement, after) = until_slash(after)
                    .ok_or_else(|| format!("rule without `/` after its replacement: {rest}"))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let anchored = format!("^(?:{pattern})$");
                let pattern =
                    Regex::new(&anchored).map_err(|e| format!("bad pattern {pattern}: {e}"))?;
                parsed.push(Rule::Replace {
                    pattern,
                    replacement: java_replacement(&replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(format!("expected RULE:... or DEFAULT at `{rest}`"));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("expected `,` between rules at `{rest}`")),
            }
        }
        if parsed.is_empty() {
            parsed.push(Rule::Default);
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// The principal name for a certificate's DN, or None when no rule
    /// applies.
    pub fn name(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_string()),
            Rule::Replace {
                pattern,
                replacement,
                case,
            } => {
                let captures = pattern.captures(dn)?;
                let mut name = String::new();
                captures.expand(replacement, &mut name);
                Some(match case {
                    Case::Keep => name,
                    Case::Lower => name.to_lowercase(),
                    Case::Upper => name.to_uppercase(),
                })
            }
        })
    }
}

/// Up to the next unescaped `/`: (text with `\/` unescaped, rest after it).
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Java's `$1` becomes the regex crate's `${1}` (so `$1abc` stays group 1).
fn java_replacement(replacement: &str) -> String {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut group = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                group.push(*d);
                chars.next();
            }
            out.push_str(&format!("${{{group}}}"));
        } else if c == '$' {
            out.push_str("$$");
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_documentation_examples() {
        // From Kafka's docs for ssl.principal.mapping.rules.
        let mapper = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
             RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\
             RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,\
             DEFAULT",
        )
        .expect("rules");
        assert_eq!(
            mapper
                .name("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("serviceuser")
        );
        assert_eq!(
            mapper
                .name("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .as_deref(),
            Some("adminuser@admin")
        );
        assert_eq!(
            mapper.name("OU=x,CN=Bob.Smith,O=y").as_deref(),
            Some("bob.smith")
        );
        assert_eq!(mapper.name("O=nobody").as_deref(), Some("O=nobody"));
    }

    #[test]
    fn default_only_and_no_match() {
        assert_eq!(
            PrincipalMapper::default().name("CN=a").as_deref(),
            Some("CN=a")
        );
        let strict = PrincipalMapper::parse("RULE:^CN=([^,]*)$/$1/U").expect("rule");
        assert_eq!(strict.name("CN=alice").as_deref(), Some("ALICE"));
        assert_eq!(strict.name("CN=alice,O=x"), None);
        let slash = PrincipalMapper::parse(r"RULE:^CN=(.*)\/x$/$1-\/y/").expect("rule");
        assert_eq!(slash.name("CN=a/x").as_deref(), Some("a-/y"));
        assert!(PrincipalMapper::parse("RULE:(/x").is_err());
        assert!(PrincipalMapper::parse("RULE:(/x/").is_err()); // bad regex
        assert!(PrincipalMapper::parse("NOPE").is_err());
    }
}
