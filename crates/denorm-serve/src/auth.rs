//! Authentication and authorization in the PostgREST style: a JWT names a
//! role; the role says which views it reads, which columns it sees masked,
//! and which rows (a filter over the token's claims). One [`Auth`] answers
//! the HTTP API and the wire protocol alike.
//!
//! ```text
//!  Authorization: Bearer <JWT>  (wire protocol: the password)
//!        │ authenticate: signature (HS256 secret, or RS256/ES256 keys of a JWKS), exp/nbf, aud
//!        ▼
//!  Principal { role (the role claim, else anonymous_role), subject, claims }
//!        │ access(view)
//!        ▼
//!  ViewAccess { masks: column → hash|redact|last4, rows: column = claim value … }
//! ```
//!
//! Users with a password (`[auth.users.NAME]`, a SCRAM-SHA-256 verifier as
//! PostgreSQL stores it, see [`crate::scram`]) are the other way in: the wire
//! protocol runs the SCRAM exchange for them, HTTP takes
//! `Authorization: Basic` (checked against the same verifier, successful
//! checks cached by a hash of the credentials). A user's principal is its
//! configured role and claims, so masks and row filters apply unchanged.
//!
//! Denials are typed ([`Denied`]): 401 for a missing, malformed, badly
//! signed or expired token (when there is no anonymous role), 403 for a
//! role, view or masked column it may not use or a claim a row filter
//! needs but the token lacks. A filter or order over a masked column is a
//! 403 too: filtering on it would reveal the value. Masking happens on the
//! way out: `hash` is the hex SHA-256 of the value's text, `redact` is
//! NULL, `last4` keeps a text's last four characters behind `***`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use denorm_types::{Datum, Value};

use crate::query::{parse_value, Condition, Filter, Op, Query};
use crate::scram::Verifier;
use crate::state::ViewInfo;

/// How a masked column's values are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mask {
    /// The hex SHA-256 of the value's text: equal values stay equal (joins
    /// and counting in the client still work), the value does not show.
    Hash,
    /// NULL.
    Redact,
    /// `***` and the last four characters of the value's text.
    Last4,
}

impl Mask {
    /// Parses `hash`, `redact` or `last4`.
    pub fn parse(text: &str) -> Option<Mask> {
        match text {
            "hash" => Some(Mask::Hash),
            "redact" => Some(Mask::Redact),
            "last4" => Some(Mask::Last4),
            _ => None,
        }
    }

    /// The shown value of `datum`.
    pub fn apply(self, datum: &Datum<'_>) -> Value {
        let Some(text) = datum_text(datum) else { return Datum::Null };
        match self {
            Mask::Redact => Datum::Null,
            Mask::Hash => {
                let digest = Sha256::digest(text.as_bytes());
                Datum::owned_text(digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
            Mask::Last4 => {
                let chars: Vec<char> = text.chars().collect();
                let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
                Datum::owned_text(format!("***{tail}"))
            }
        }
    }
}

fn datum_text(datum: &Datum<'_>) -> Option<String> {
    match datum {
        Datum::Null => None,
        Datum::Text(t) => Some(t.to_string()),
        other => Some(other.pg_text().unwrap_or_else(|| format!("{other:?}"))),
    }
}

/// What a row filter compares a column with.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// A claim of the token, by dotted path (`claim.tenant_id`, `claim.app.org`).
    Claim(Vec<String>),
    /// A constant.
    Literal(Json),
}

/// `column = claim.x` (or a constant): a view the role reads shows only
/// the rows where it holds. Every view granted to the role must have the
/// column.
#[derive(Debug, Clone, PartialEq)]
pub struct RowFilter {
    pub column: String,
    pub value: FilterValue,
}

impl RowFilter {
    /// Parses `where = "tenant_id = claim.tenant_id AND region = 'eu'"`:
    /// equalities joined by AND, each `column = claim.path`, a string in
    /// single quotes, a number, `true` or `false`.
    pub fn parse_all(text: &str) -> Result<Vec<RowFilter>, String> {
        let mut out = Vec::new();
        for term in split_and(text) {
            let Some((column, value)) = term.split_once('=') else {
                return Err(format!("`{term}`: write `column = claim.name` or `column = 'value'`"));
            };
            let column = column.trim();
            let value = value.trim();
            if column.is_empty() || !column.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return Err(format!("`{term}`: `{column}` is not a column name"));
            }
            let value = if let Some(path) = value.strip_prefix("claim.") {
                FilterValue::Claim(path.split('.').map(str::to_string).collect())
            } else if let Some(s) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
                FilterValue::Literal(Json::String(s.replace("''", "'")))
            } else if let Ok(json) = serde_json::from_str::<Json>(value) {
                if !(json.is_number() || json.is_boolean()) {
                    return Err(format!("`{term}`: compare with claim.name, a 'string', a number, true or false"));
                }
                FilterValue::Literal(json)
            } else {
                return Err(format!("`{term}`: compare with claim.name, a 'string', a number, true or false"));
            };
            out.push(RowFilter { column: column.to_string(), value });
        }
        Ok(out)
    }
}

fn split_and(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let words: Vec<&str> = text.split_inclusive(char::is_whitespace).collect();
    for word in words {
        quoted ^= word.matches('\'').count() % 2 == 1;
        if !quoted && word.trim().eq_ignore_ascii_case("and") {
            out.push(std::mem::take(&mut current).trim().to_string());
        } else {
            current.push_str(word);
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// What a role may read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Role {
    /// Views by name; `None` for every view.
    pub views: Option<BTreeSet<String>>,
    /// `(view, column)` → mask; view `*` masks the column in every view.
    pub masks: BTreeMap<(String, String), Mask>,
    pub rows: Vec<RowFilter>,
    /// May read `/metrics`, the full `/health` and `/ui`.
    pub monitor: bool,
    /// May use `POST /admin/*` (reload, reconcile).
    pub admin: bool,
}

/// The verification keys.
#[derive(Clone)]
pub enum Keys {
    /// HS256 with a shared secret.
    Secret(Vec<u8>),
    /// RS256/ES256 public keys from a JWKS document, by key id.
    Jwks(JwkSet),
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keys::Secret(_) => f.write_str("Secret(***)"),
            Keys::Jwks(set) => write!(f, "Jwks({} keys)", set.keys.len()),
        }
    }
}

/// A user who logs in with a password (`[auth.users.NAME]`).
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub verifier: Verifier,
    /// The role the user reads as.
    pub role: String,
    /// The claims row filters read (`claim.tenant_id`), as a token's would.
    pub claims: Json,
}

/// The `[auth]` configuration, checked.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The keys tokens are verified with; `None`: only users log in.
    pub keys: Option<Keys>,
    /// Dotted path of the claim naming the role (`role`, `app_metadata.role`).
    pub role_claim: Vec<String>,
    /// The role of a request without a token; `None`: such requests are 401.
    pub anonymous_role: Option<String>,
    /// The `aud` a token must carry, when set.
    pub audience: Option<String>,
    pub roles: BTreeMap<String, Role>,
    /// Users by name.
    pub users: BTreeMap<String, User>,
    /// Hashes of HTTP Basic credentials that matched (a verifier check costs
    /// thousands of HMACs; a cache hit costs one SHA-256).
    pub verified: Arc<Mutex<HashSet<[u8; 32]>>>,
}

/// How many verified Basic credentials are remembered before the cache is
/// emptied.
const VERIFIED_CACHE: usize = 4096;

/// Who is asking.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub role: String,
    /// The `sub` claim, for the audit log.
    pub subject: Option<String>,
    pub claims: Json,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("authentication required: no bearer token, and no anonymous role is configured")]
    MissingToken,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("the token has expired")]
    Expired,
    #[error("role {0:?} is not configured")]
    UnknownRole(String),
    #[error("role {role:?} may not read view {view:?}")]
    View { role: String, view: String },
    #[error("column {column:?} of view {view:?} is masked for role {role:?}: it cannot be filtered or ordered on")]
    MaskedColumn { role: String, view: String, column: String },
    #[error("the token has no claim {claim:?}, which role {role:?}'s row filter reads")]
    MissingClaim { role: String, claim: String },
    #[error("role {0:?} may not read monitoring endpoints")]
    Monitor(String),
    #[error("password authentication failed for user {0:?}")]
    Password(String),
}

impl Denied {
    /// 401 (who are you?) or 403 (not allowed).
    pub fn status(&self) -> u16 {
        match self {
            Denied::MissingToken | Denied::InvalidToken(_) | Denied::Expired | Denied::Password(_) => 401,
            _ => 403,
        }
    }

    /// The `reason` label of `denorm_auth_denied_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Denied::MissingToken => "missing_token",
            Denied::InvalidToken(_) => "invalid_token",
            Denied::Expired => "expired",
            Denied::UnknownRole(_) => "unknown_role",
            Denied::View { .. } => "view",
            Denied::MaskedColumn { .. } => "masked_column",
            Denied::MissingClaim { .. } => "missing_claim",
            Denied::Monitor(_) => "monitor",
            Denied::Password(_) => "bad_password",
        }
    }

    pub fn hint(&self) -> String {
        match self {
            Denied::MissingToken => "send Authorization: Bearer <JWT>".into(),
            Denied::InvalidToken(_) => "send a JWT signed with the configured key".into(),
            Denied::Expired => "get a new token".into(),
            Denied::UnknownRole(_) => "use a token whose role claim names a role of [auth.roles]".into(),
            Denied::View { .. } => "GET /views lists the views this role may read".into(),
            Denied::MaskedColumn { .. } => "filter and order on unmasked columns only".into(),
            Denied::MissingClaim { .. } => "issue the token with that claim".into(),
            Denied::Monitor(_) => "use a role with monitor = true".into(),
            Denied::Password(_) => {
                "check the user name and password ([auth.users]; `denorm auth hash-password` makes a verifier)".into()
            }
        }
    }
}

/// A role's access to one view, resolved against the view's columns and
/// the principal's claims.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewAccess {
    /// `(column index, mask)`.
    pub masks: Vec<(usize, Mask)>,
    /// `(column index, value)`: only rows whose column equals the value.
    pub rows: Vec<(usize, Json)>,
}

impl ViewAccess {
    pub fn mask_of(&self, column: usize) -> Option<Mask> {
        self.masks.iter().find(|(c, _)| *c == column).map(|(_, m)| *m)
    }

    /// `datum` of view column `column` as the role sees it.
    pub fn show(&self, column: usize, datum: &Datum<'_>) -> Value {
        match self.mask_of(column) {
            Some(mask) => mask.apply(datum),
            None => datum.clone().into_owned(),
        }
    }
}

impl Auth {
    /// Who sent `bearer` (the token without `Bearer `), or why not.
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<Principal, Denied> {
        let Some(token) = bearer.map(str::trim).filter(|t| !t.is_empty()) else {
            return match &self.anonymous_role {
                Some(role) => Ok(Principal { role: role.clone(), subject: None, claims: Json::Null }),
                None => Err(Denied::MissingToken),
            };
        };
        let claims = self.verify(token)?;
        let role = match lookup(&claims, &self.role_claim) {
            Some(Json::String(role)) => role.clone(),
            Some(other) => return Err(Denied::InvalidToken(format!("the role claim is not a string: {other}"))),
            None => match &self.anonymous_role {
                Some(role) => role.clone(),
                None => {
                    return Err(Denied::InvalidToken(format!("no {:?} claim names a role", self.role_claim.join("."))))
                }
            },
        };
        if !self.roles.contains_key(&role) {
            return Err(Denied::UnknownRole(role));
        }
        let subject = claims.get("sub").and_then(Json::as_str).map(str::to_string);
        Ok(Principal { role, subject, claims })
    }

    /// The principal of a user who proved its password (SCRAM on the wire).
    pub fn user_principal(&self, name: &str) -> Result<Principal, Denied> {
        let user = self.users.get(name).ok_or_else(|| Denied::Password(name.to_string()))?;
        if !self.roles.contains_key(&user.role) {
            return Err(Denied::UnknownRole(user.role.clone()));
        }
        Ok(Principal { role: user.role.clone(), subject: Some(name.to_string()), claims: user.claims.clone() })
    }

    /// HTTP Basic: `name` and `password` checked against the user's verifier.
    pub fn basic(&self, name: &str, password: &str) -> Result<Principal, Denied> {
        let Some(user) = self.users.get(name) else {
            // The same work as a real check, so timing does not tell which users exist.
            crate::scram::mock_verifier(name).matches(password);
            return Err(Denied::Password(name.to_string()));
        };
        let mut hasher = Sha256::new();
        for part in [name.as_bytes(), &[0], password.as_bytes(), &[0], user.verifier.encode().as_bytes()] {
            hasher.update(part);
        }
        let fingerprint: [u8; 32] = hasher.finalize().into();
        let known = self.verified.lock().map(|cache| cache.contains(&fingerprint)).unwrap_or(false);
        if !known {
            if !user.verifier.matches(password) {
                return Err(Denied::Password(name.to_string()));
            }
            if let Ok(mut cache) = self.verified.lock() {
                if cache.len() >= VERIFIED_CACHE {
                    cache.clear();
                }
                cache.insert(fingerprint);
            }
        }
        self.user_principal(name)
    }

    fn verify(&self, token: &str) -> Result<Json, Denied> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| Denied::InvalidToken(e.to_string()))?;
        let Some(keys) = &self.keys else {
            return Err(Denied::InvalidToken(
                "this server verifies no tokens ([auth] has no JWT key): log in as a user of [auth.users]".into(),
            ));
        };
        let (key, algorithm) = match keys {
            Keys::Secret(secret) => {
                (DecodingKey::from_secret(secret).map_err(|e| Denied::InvalidToken(e.to_string()))?, Algorithm::HS256)
            }
            Keys::Jwks(set) => {
                let jwk = match &header.kid {
                    Some(kid) => set.find(kid),
                    None if set.keys.len() == 1 => set.keys.first(),
                    None => None,
                }
                .ok_or_else(|| Denied::InvalidToken("no key of the JWKS matches the token's kid".into()))?;
                let key = DecodingKey::from_jwk(jwk).map_err(|e| Denied::InvalidToken(e.to_string()))?;
                if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
                    return Err(Denied::InvalidToken(format!("algorithm {:?} is not accepted", header.alg)));
                }
                (key, header.alg)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.required_spec_claims = BTreeSet::new().into_iter().collect();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 0;
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        jsonwebtoken::decode::<Json>(token, &key, &validation).map(|data| data.claims).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => Denied::Expired,
            _ => Denied::InvalidToken(e.to_string()),
        })
    }

    /// The principal's access to `view`, or why it has none.
    pub fn access(&self, principal: &Principal, view: &ViewInfo) -> Result<ViewAccess, Denied> {
        let role = self.roles.get(&principal.role).ok_or_else(|| Denied::UnknownRole(principal.role.clone()))?;
        if !role.views.as_ref().is_none_or(|views| views.contains(&view.name)) {
            return Err(Denied::View { role: principal.role.clone(), view: view.name.clone() });
        }
        let mut access = ViewAccess::default();
        for ((masked_view, column), mask) in &role.masks {
            if masked_view == "*" || *masked_view == view.name {
                if let Some(i) = view.column_index(column) {
                    access.masks.push((i, *mask));
                }
            }
        }
        for filter in &role.rows {
            let Some(i) = view.column_index(&filter.column) else {
                // Checked at start: every granted view has the column. A view
                // without it shows nothing rather than everything.
                return Err(Denied::View { role: principal.role.clone(), view: view.name.clone() });
            };
            let value = match &filter.value {
                FilterValue::Literal(v) => v.clone(),
                FilterValue::Claim(path) => lookup(&principal.claims, path)
                    .cloned()
                    .ok_or_else(|| Denied::MissingClaim { role: principal.role.clone(), claim: path.join(".") })?,
            };
            access.rows.push((i, value));
        }
        Ok(access)
    }

    /// Whether the principal may read the monitoring endpoints.
    pub fn monitor(&self, principal: &Principal) -> Result<(), Denied> {
        match self.roles.get(&principal.role) {
            Some(role) if role.monitor => Ok(()),
            _ => Err(Denied::Monitor(principal.role.clone())),
        }
    }

    /// Whether the principal may read view `name` at all (for listing).
    pub fn may_read(&self, principal: &Principal, name: &str) -> bool {
        self.roles.get(&principal.role).is_some_and(|r| r.views.as_ref().is_none_or(|v| v.contains(name)))
    }

    /// The views (of `views`) granted to a role with row filters that lack
    /// a filtered column: refused at start, with the fix.
    pub fn check_views(&self, views: &[ViewInfo]) -> Result<(), String> {
        let mut problems = Vec::new();
        for (name, role) in &self.roles {
            if let Some(granted) = &role.views {
                for view in granted.iter().filter(|v| !views.iter().any(|i| &i.name == *v)) {
                    problems.push(format!("[auth.roles.{name}] grants view {view:?}, which no views file defines"));
                }
            }
            for view in views.iter().filter(|v| role.views.as_ref().is_none_or(|g| g.contains(&v.name))) {
                for filter in role.rows.iter().filter(|f| view.column_index(&f.column).is_none()) {
                    problems.push(format!(
                        "[auth.roles.{name}] where reads column {:?}, which view {:?} does not have: \
                         grant the role only views with that column (views = [...])",
                        filter.column, view.name
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

/// Applies a role's restrictions to a parsed read: its row filters become
/// `eq` filters (at the front, so a filter on key columns still makes a
/// lookup), and a filter, condition, order or computed select item over a
/// masked column is refused (it would reveal the value).
pub fn restrict(view: &ViewInfo, query: &mut Query, access: &ViewAccess, role: &str) -> Result<(), Denied> {
    let masked = |column: usize| access.mask_of(column).is_some();
    let refuse = |column: usize| Denied::MaskedColumn {
        role: role.to_owned(),
        view: view.name.clone(),
        column: view.columns[column].name.clone(),
    };
    fn in_condition(condition: &Condition, masked: &dyn Fn(usize) -> bool) -> Option<usize> {
        match condition {
            Condition::Filter { filter, .. } => masked(filter.column).then_some(filter.column),
            Condition::Group { items, .. } => items.iter().find_map(|c| in_condition(c, masked)),
        }
    }
    let used = query
        .filters
        .iter()
        .map(|f| f.column)
        .chain(query.order.iter().map(|o| o.column))
        .find(|&c| masked(c))
        .or_else(|| query.conditions.iter().find_map(|c| in_condition(c, &masked)))
        .or_else(|| {
            let items = query.projection.as_deref().unwrap_or(&[]);
            items.iter().find(|i| masked(i.column) && (!i.path.steps.is_empty() || i.cast.is_some())).map(|i| i.column)
        });
    if let Some(column) = used {
        return Err(refuse(column));
    }
    for (i, (column, value)) in access.rows.iter().enumerate() {
        let text = match value {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        let column_info = &view.columns[*column];
        let value = parse_value(&column_info.name, column_info.ty, &text).map_err(|_| Denied::MissingClaim {
            role: role.to_owned(),
            claim: format!("{} (of the column's type)", column_info.name),
        })?;
        query.filters.insert(i, Filter { column: *column, negated: false, op: Op::Eq(value) });
    }
    Ok(())
}

/// The value at a dotted path of a JSON object.
fn lookup<'a>(json: &'a Json, path: &[String]) -> Option<&'a Json> {
    path.iter().try_fold(json, |at, key| at.get(key)).filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ColumnInfo;
    use denorm_types::ScalarType;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn auth() -> Auth {
        let mut roles = BTreeMap::new();
        roles.insert(
            "tenant".to_string(),
            Role {
                views: Some(["orders".to_string()].into()),
                masks: [(("orders".to_string(), "email".to_string()), Mask::Last4)].into(),
                rows: RowFilter::parse_all("tenant_id = claim.tenant_id").unwrap(),
                monitor: false,
                admin: false,
            },
        );
        roles.insert("ops".to_string(), Role { monitor: true, ..Role::default() });
        let users = [(
            "ann".to_string(),
            User {
                verifier: Verifier::with_salt("pencil", b"salt", 64),
                role: "tenant".into(),
                claims: json!({"tenant_id": 7}),
            },
        )]
        .into();
        Auth {
            keys: Some(Keys::Secret(b"sekrit".to_vec())),
            role_claim: vec!["role".into()],
            anonymous_role: None,
            audience: None,
            roles,
            users,
            verified: Arc::default(),
        }
    }

    fn token(claims: Json, secret: &[u8]) -> String {
        encode(&Header::default(), &claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
    }

    fn view(name: &str, columns: &[&str]) -> ViewInfo {
        ViewInfo {
            name: name.into(),
            columns: columns.iter().map(|c| ColumnInfo { name: (*c).into(), ty: ScalarType::Text }).collect(),
            key: vec![0],
            ..Default::default()
        }
    }

    #[test]
    fn users_log_in_with_their_password_as_their_role() {
        let auth = auth();
        let ann = auth.basic("ann", "pencil").unwrap();
        assert_eq!((ann.role.as_str(), ann.subject.as_deref()), ("tenant", Some("ann")));
        assert_eq!(auth.basic("ann", "pencil").unwrap(), ann, "a cached check gives the same principal");
        assert_eq!(auth.basic("ann", "pencils"), Err(Denied::Password("ann".into())));
        assert_eq!(auth.basic("bob", "pencil"), Err(Denied::Password("bob".into())));
        assert_eq!(Denied::Password("x".into()).status(), 401);
        let access = auth.access(&ann, &view("orders", &["tenant_id", "email"])).unwrap();
        assert_eq!(access.rows, vec![(0, json!(7))], "the user's claims drive the row filter");
        let no_keys = Auth { keys: None, ..auth };
        let token = token(json!({"role": "ops"}), b"sekrit");
        assert!(
            matches!(no_keys.authenticate(Some(&token)), Err(Denied::InvalidToken(m)) if m.contains("[auth.users]"))
        );
    }

    #[test]
    fn every_denial_path() {
        let auth = auth();
        let exp = || json!(4_000_000_000u64);
        assert_eq!(auth.authenticate(None), Err(Denied::MissingToken));
        assert!(matches!(auth.authenticate(Some("not.a.jwt")), Err(Denied::InvalidToken(_))));
        let bad = token(json!({"role": "tenant", "exp": exp()}), b"other");
        assert!(matches!(auth.authenticate(Some(&bad)), Err(Denied::InvalidToken(_))));
        let expired = token(json!({"role": "tenant", "exp": 1_000}), b"sekrit");
        assert_eq!(auth.authenticate(Some(&expired)), Err(Denied::Expired));
        let stranger = token(json!({"role": "admin", "exp": exp()}), b"sekrit");
        assert_eq!(auth.authenticate(Some(&stranger)), Err(Denied::UnknownRole("admin".into())));

        let no_claim = token(json!({"role": "tenant", "sub": "u1"}), b"sekrit");
        let p = auth.authenticate(Some(&no_claim)).unwrap();
        assert_eq!(p.subject.as_deref(), Some("u1"));
        let orders = view("orders", &["id", "tenant_id", "email"]);
        assert!(matches!(auth.access(&p, &orders), Err(Denied::MissingClaim { .. })));
        assert!(matches!(auth.access(&p, &view("users", &["id"])), Err(Denied::View { .. })));
        assert!(matches!(auth.monitor(&p), Err(Denied::Monitor(_))));

        let good = token(json!({"role": "tenant", "tenant_id": 7, "exp": exp()}), b"sekrit");
        let p = auth.authenticate(Some(&good)).unwrap();
        let access = auth.access(&p, &orders).unwrap();
        assert_eq!(access.rows, vec![(1, json!(7))]);
        assert_eq!(access.mask_of(2), Some(Mask::Last4));
        assert_eq!(access.mask_of(0), None);
        for d in [Denied::MissingToken, Denied::Expired, Denied::InvalidToken("x".into())] {
            assert_eq!(d.status(), 401);
        }
        assert_eq!(Denied::Monitor("x".into()).status(), 403);
    }

    #[test]
    fn an_anonymous_role_serves_requests_without_a_token() {
        let mut auth = auth();
        auth.anonymous_role = Some("ops".into());
        assert_eq!(auth.authenticate(None).unwrap().role, "ops");
        assert!(auth.monitor(&auth.authenticate(Some("")).unwrap()).is_ok());
    }

    #[test]
    fn masks() {
        assert_eq!(Mask::Last4.apply(&Datum::text("ada@example.com")), Datum::owned_text(String::from("***.com")));
        assert_eq!(Mask::Last4.apply(&Datum::text("ab")), Datum::owned_text(String::from("***ab")));
        assert_eq!(Mask::Redact.apply(&Datum::text("x")), Datum::Null);
        let Datum::Text(h) = Mask::Hash.apply(&Datum::text("abc")) else { panic!() };
        assert_eq!(&*h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(Mask::Hash.apply(&Datum::Null), Datum::Null);
        assert_eq!(Mask::parse("last4"), Some(Mask::Last4));
        assert_eq!(Mask::parse("nope"), None);
    }

    #[test]
    fn row_filters_parse() {
        let f = RowFilter::parse_all("tenant_id = claim.org.id AND region = 'it''s' and tier = 2").unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].value, FilterValue::Claim(vec!["org".into(), "id".into()]));
        assert_eq!(f[1].value, FilterValue::Literal(json!("it's")));
        assert_eq!(f[2].value, FilterValue::Literal(json!(2)));
        assert!(RowFilter::parse_all("tenant_id > 3").unwrap_err().contains("write `column = claim.name`"));
        assert!(RowFilter::parse_all("a.b = 3").unwrap_err().contains("not a column name"));
        assert!(RowFilter::parse_all("a = b").unwrap_err().contains("compare with"));
    }

    #[test]
    fn start_checks_name_the_fix() {
        let auth = auth();
        let err = auth.check_views(&[view("orders", &["id", "email"])]).unwrap_err();
        assert!(err.contains("tenant_id"), "{err}");
        assert!(auth.check_views(&[view("orders", &["id", "tenant_id", "email"])]).is_ok());
        let err = auth.check_views(&[]).unwrap_err();
        assert!(err.contains("no views file defines"), "{err}");
    }

    /// A test-only P-256 key pair (generated with openssl for this test).
    const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgOARwTBubMzbbG2KQ
MAnKOl6be/hGwP4wj2U0BS2beoahRANCAART1ja6fswbSyJdLoy0GNCOxvvoDPSp
TBFJbgmm5idR3Snw5Qa8GN3P4sICmRqjQcr0mau2dw9iUFVY8QjmT2j8
-----END PRIVATE KEY-----
";
    const EC_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig","x":"U9Y2un7MG0siXS6MtBjQjsb76Az0qUwRSW4JpuYnUd0","y":"KfDlBrwY3c_iwgKZGqNByvSZq7Z3D2JQVVjxCOZPaPw"}]}"#;

    #[test]
    fn es256_tokens_verify_against_the_jwks() {
        let mut auth = auth();
        auth.keys = Some(Keys::Jwks(serde_json::from_str(EC_JWKS).unwrap()));
        auth.audience = Some("denorm".into());
        let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
        let sign = |kid: Option<&str>, claims: Json| {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = kid.map(str::to_string);
            encode(&header, &claims, &key).unwrap()
        };
        let ok = sign(Some("k1"), json!({"role": "ops", "aud": "denorm"}));
        assert_eq!(auth.authenticate(Some(&ok)).unwrap().role, "ops");
        assert_eq!(auth.authenticate(Some(&sign(None, json!({"role": "ops", "aud": "denorm"})))).unwrap().role, "ops");
        let wrong_aud = sign(Some("k1"), json!({"role": "ops", "aud": "other"}));
        assert!(matches!(auth.authenticate(Some(&wrong_aud)), Err(Denied::InvalidToken(_))));
        let unknown_kid = sign(Some("k2"), json!({"role": "ops", "aud": "denorm"}));
        assert!(matches!(auth.authenticate(Some(&unknown_kid)), Err(Denied::InvalidToken(m)) if m.contains("kid")));
        // An HS256 token signed with the public key's text is refused (algorithm confusion).
        let hs = token(json!({"role": "ops", "aud": "denorm"}), EC_JWKS.as_bytes());
        assert!(matches!(auth.authenticate(Some(&hs)), Err(Denied::InvalidToken(_))));
    }
}
