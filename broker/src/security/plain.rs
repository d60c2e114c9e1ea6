//! SASL/PLAIN (RFC 4616) against the users of the listener's JAAS line,
//! as Kafka's `PlainServerCallbackHandler` checks them:
//! `listener.name.<listener>.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="secret";`

use aws_lc_rs::constant_time;
use std::collections::BTreeMap;

/// `user_<name>="<password>"` options of a JAAS line. Passwords never
/// reach a log (`Debug` shows the names only).
#[derive(Clone, Default)]
pub struct PlainUsers(BTreeMap<String, String>);

impl std::fmt::Debug for PlainUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    #[error("malformed PLAIN message")]
    Malformed,
    #[error("authorization id differs from the user name")]
    AuthorizationId,
    #[error("invalid user name or password")]
    InvalidCredentials,
}

impl PlainUsers {
    /// Reads the `user_*` options of a JAAS configuration line
    /// (`LoginModule flag key="value" ...;`).
    pub fn from_jaas(jaas: &str) -> Result<PlainUsers, String> {
        let mut users = BTreeMap::new();
        for (key, value) in jaas_options(jaas)? {
            if let Some(user) = key.strip_prefix("user_") {
                users.insert(user.to_string(), value);
            }
        }
        Ok(PlainUsers(users))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks one PLAIN message (`authzid NUL authcid NUL passwd`); the
    /// authenticated user on success.
    pub fn authenticate(&self, message: &[u8]) -> Result<String, PlainError> {
        let mut parts = message.split(|&b| b == 0);
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PlainError::Malformed);
        };
        let user = std::str::from_utf8(user).map_err(|_| PlainError::Malformed)?;
        if user.is_empty() {
            return Err(PlainError::Malformed);
        }
        if !authzid.is_empty() && authzid != user.as_bytes() {
            return Err(PlainError::AuthorizationId);
        }
        let expected = self.0.get(user).ok_or(PlainError::InvalidCredentials)?;
        constant_time::verify_slices_are_equal(expected.as_bytes(), password)
            .map_err(|_| PlainError::InvalidCredentials)?;
        Ok(user.to_string())
    }
}

/// The `key="value"` (or `key=value`) options of a JAAS line, after the
/// login module's class name and control flag, up to the `;`.
pub fn jaas_options(jaas: &str) -> Result<Vec<(String, String)>, String> {
    let mut rest = jaas.trim();
    // The login module class and its flag (required, requisite, ...).
    for _ in 0..2 {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if rest[..end].contains('=') {
            return Err("expected `LoginModule required key=\"value\" ...;`".into());
        }
        rest = rest[end..].trim_start();
    }
    let mut options = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() || rest.starts_with(';') {
            return Ok(options);
        }
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("option without `=` near `{}`", cut(rest)))?;
        let key = key.trim().to_string();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| format!("unterminated quote in option {key}"))?;
            (value, &quoted[end..])
        } else {
            let end = after
                .find(|c: char| c.is_whitespace() || c == ';')
                .unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        options.push((key, value));
        rest = next;
    }
}

fn cut(s: &str) -> &str {
    let end = s.char_indices().nth(20).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required
        username="admin" password="admin-secret"
        user_admin="admin-secret" user_alice="al\"ice" user_bob=bob-pw;"#;

    #[test]
    fn jaas_users_and_their_passwords() {
        let users = PlainUsers::from_jaas(JAAS).expect("jaas");
        assert_eq!(format!("{users:?}"), r#"{"admin", "alice", "bob"}"#);
        assert_eq!(users.authenticate(b"\0alice\0al\"ice"), Ok("alice".into()));
        assert_eq!(users.authenticate(b"bob\0bob\0bob-pw"), Ok("bob".into()));
        assert_eq!(
            users.authenticate(b"\0alice\0wrong"),
            Err(PlainError::InvalidCredentials)
        );
        assert_eq!(
            users.authenticate(b"\0nobody\0x"),
            Err(PlainError::InvalidCredentials)
        );
        assert_eq!(
            users.authenticate(b"admin\0alice\0al\"ice"),
            Err(PlainError::AuthorizationId)
        );
        assert_eq!(users.authenticate(b"\0alice"), Err(PlainError::Malformed));
        assert_eq!(users.authenticate(b"\0\0x"), Err(PlainError::Malformed));
        assert_eq!(users.authenticate(b"\0a\0b\0c"), Err(PlainError::Malformed));
    }

    #[test]
    fn malformed_jaas_lines_are_refused() {
        assert!(PlainUsers::from_jaas("user_a=\"x\";").is_err());
        assert!(PlainUsers::from_jaas("M required user_a=\"x").is_err());
        assert!(PlainUsers::from_jaas("M required oops;").is_err());
        assert!(PlainUsers::from_jaas("M required;")
            .expect("empty")
            .is_empty());
    }
}
