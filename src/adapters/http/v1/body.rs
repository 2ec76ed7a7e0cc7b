//! Netsoc's request bodies, read as its Go server reads them (`encoding/json` with unknown
//! fields disallowed: field names match case-insensitively, `null` is the zero value, an
//! empty body is `EOF`), and its User JSON.

use crate::service::netsoc::NetsocUser;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A body as Netsoc's `ParseJSONBody` reads it into a struct with `fields`: 400's message on
/// failure (`failed to parse request body: …`).
pub fn parse<T: serde::de::DeserializeOwned + Default>(bytes: &[u8], fields: &[&str]) -> Result<T, String> {
    let fail = |why: String| format!("failed to parse request body: {why}");
    let text = std::str::from_utf8(bytes).map_err(|_| fail("invalid UTF-8".into()))?;
    if text.trim().is_empty() {
        return Err(fail("EOF".into()));
    }
    // Only the first JSON value counts, as a json.Decoder reads it.
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let value = match values.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) if e.is_eof() => return Err(fail("unexpected EOF".into())),
        Some(Err(e)) => return Err(fail(format!("invalid JSON: {e}"))),
        None => return Err(fail("EOF".into())),
    };
    let object = match value {
        Value::Null => return Ok(T::default()),
        Value::Object(o) => o,
        other => {
            return Err(fail(format!("json: cannot unmarshal {} into Go value of type struct", kind(&other))))
        }
    };
    let mut canonical = Map::new();
    for (key, value) in object {
        let Some(name) = fields.iter().find(|f| f.eq_ignore_ascii_case(&key)) else {
            return Err(fail(format!("json: unknown field \"{key}\"")));
        };
        if !value.is_null() {
            canonical.insert((*name).to_owned(), value);
        }
    }
    serde_json::from_value(Value::Object(canonical)).map_err(|e| fail(format!("json: {e}")))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Netsoc's User as a request body: every field optional (absent, `null` and Go's zero value
/// mean "not given" on a PATCH).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = NetsocUserInput)]
pub struct UserBody {
    pub id: Option<u64>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub ssh_key: Option<String>,
    pub verified: Option<bool>,
    pub is_admin: Option<bool>,
    pub renewed: Option<String>,
    pub meta: Option<Value>,
}

pub const USER_FIELDS: &[&str] = &[
    "id",
    "username",
    "email",
    "password",
    "first_name",
    "last_name",
    "ssh_key",
    "verified",
    "is_admin",
    "renewed",
    "meta",
];

impl UserBody {
    /// `renewed` as a time, `None` when absent or Go's zero time (0001-01-01T00:00:00Z);
    /// RFC 3339 with any fraction of a second (the payments server sends milliseconds).
    pub fn renewed(&self) -> Result<Option<DateTime<Utc>>, String> {
        let Some(raw) = self.renewed.as_deref() else { return Ok(None) };
        let at = DateTime::parse_from_rfc3339(raw)
            .map_err(|_| format!("failed to parse request body: parsing time \"{raw}\" as RFC 3339 failed"))?
            .with_timezone(&Utc);
        Ok((at != crate::domain::never_renewed()).then_some(at))
    }

    /// A string field that is given and not Go's zero value.
    pub fn given(field: &Option<String>) -> Option<&str> {
        field.as_deref().filter(|s| !s.is_empty())
    }
}

/// `{"password"}` of login and the reset.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = NetsocPassword)]
pub struct PasswordBody {
    pub password: String,
}

/// `{"duration"}` of an issued token (Go's duration syntax, e.g. `24h`, `1h30m`, `876000h`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = NetsocDuration)]
pub struct DurationBody {
    pub duration: String,
}

/// Netsoc's error: `{"message"}`, as `application/problem+json`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = NetsocProblem)]
pub struct Problem {
    pub message: String,
}

/// `{"token"}`: an ES256 JWT.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = NetsocToken)]
pub struct TokenReply {
    pub token: String,
}

/// Netsoc's User as an answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = NetsocUser)]
pub struct UserReply {
    pub id: i32,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<String>,
    pub verified: bool,
    pub is_admin: bool,
    pub renewed: String,
    pub meta: Meta,
}

/// When the user was created and last changed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = NetsocUserMeta)]
pub struct Meta {
    pub created: String,
    pub updated: String,
}

/// RFC 3339 as Go writes a time: UTC, `Z`, the fraction only when there is one (a renewal
/// keeps its milliseconds).
pub fn go_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl From<&NetsocUser> for UserReply {
    fn from(u: &NetsocUser) -> Self {
        UserReply {
            id: u.number,
            username: u.username.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            ssh_key: u.ssh_key.clone(),
            verified: u.verified,
            is_admin: u.is_admin,
            renewed: go_time(u.renewed),
            meta: Meta { created: go_time(u.created), updated: go_time(u.updated) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_read_as_gos_decoder_reads_them() {
        let user: UserBody = parse(br#"{"Username":"bob","id":0,"renewed":null}"#, USER_FIELDS).unwrap();
        assert_eq!(user.username.as_deref(), Some("bob"));
        assert_eq!(user.id, Some(0));
        assert!(user.renewed.is_none());
        let err = parse::<UserBody>(br#"{"x":1}"#, USER_FIELDS).unwrap_err();
        assert_eq!(err, "failed to parse request body: json: unknown field \"x\"");
        assert_eq!(parse::<UserBody>(b"", USER_FIELDS).unwrap_err(), "failed to parse request body: EOF");
        let null: PasswordBody = parse(b"null", &["password"]).unwrap();
        assert_eq!(null.password, "");
        assert!(parse::<PasswordBody>(b"[]", &["password"]).is_err());
        assert!(parse::<PasswordBody>(br#"{"password":1}"#, &["password"]).is_err());
        let trailing: PasswordBody = parse(br#"{"password":"p"} trailing"#, &["password"]).unwrap();
        assert_eq!(trailing.password, "p");
    }

    #[test]
    fn go_zero_time_is_no_renewal_and_milliseconds_parse() {
        let zero = UserBody { renewed: Some("0001-01-01T00:00:00Z".into()), ..Default::default() };
        assert_eq!(zero.renewed(), Ok(None));
        let ms = UserBody { renewed: Some("2021-09-01T12:30:00.123Z".into()), ..Default::default() };
        assert_eq!(ms.renewed().unwrap().map(|t| t.timestamp_millis()), Some(1_630_499_400_123));
        assert!(UserBody { renewed: Some("soon".into()), ..Default::default() }.renewed().is_err());
        assert_eq!(go_time(crate::domain::never_renewed()), "0001-01-01T00:00:00Z");
    }
}
