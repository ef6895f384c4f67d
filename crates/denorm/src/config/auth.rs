//! `[auth]` and `[audit]`: who may read what, and the log of every read.
//!
//! ```toml
//! [auth]
//! jwt_secret = "…"                # HS256; or jwt_secret_file = "secret.txt"; or jwks_file = "jwks.json" (RS256/ES256)
//! role_claim = "role"             # dotted path of the claim naming the role (default "role")
//! anonymous_role = "web_anon"     # the role of requests without a token (default: they are 401)
//! audience = "denorm"             # optional: the `aud` tokens must carry
//!
//! [auth.roles.web_anon]
//! views = ["product_stats"]       # default: every view
//!
//! [auth.roles.tenant]
//! views = ["orders"]
//! mask = { "orders.email" = "last4", "*.phone" = "redact" }   # hash | redact | last4
//! where = "tenant_id = claim.tenant_id"                       # row filter over the token's claims
//!
//! [auth.roles.ops]
//! monitor = true                  # may read /metrics, the full /health and /ui
//! admin = true                    # may use POST /admin/reload and /admin/reconcile
//!
//! [auth.users.ann]                # logs in with a password: SCRAM on the wire protocol, Basic on HTTP
//! password = "SCRAM-SHA-256$4096:…$…:…"   # a verifier (`denorm auth hash-password`, or pg_authid.rolpassword)
//! role = "tenant"
//! claims = { tenant_id = 7 }      # what row filters read as claim.*
//!
//! [audit]
//! path = "audit.jsonl"            # one JSON line per read; "-" for stdout
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

pub use denorm_serve::audit::AuditTarget;
use denorm_serve::auth::{Auth, Keys, Mask, Role, RowFilter, User};
use denorm_serve::scram::Verifier;
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    jwt_secret: Option<Spanned<String>>,
    jwt_secret_file: Option<Spanned<String>>,
    jwks_file: Option<Spanned<String>>,
    role_claim: Option<Spanned<String>>,
    anonymous_role: Option<Spanned<String>>,
    audience: Option<String>,
    #[serde(default)]
    roles: BTreeMap<String, Spanned<RawRole>>,
    #[serde(default)]
    users: BTreeMap<String, Spanned<RawUser>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    password: Spanned<String>,
    role: Spanned<String>,
    #[serde(default)]
    claims: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRole {
    views: Option<Vec<String>>,
    #[serde(default)]
    mask: BTreeMap<String, Spanned<String>>,
    #[serde(rename = "where")]
    rows: Option<Spanned<String>>,
    #[serde(default)]
    monitor: bool,
    #[serde(default)]
    admin: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    path: Spanned<String>,
}

/// An error at a span of the file: message and hint.
pub(super) type Invalid = (Option<Range<usize>>, String, Option<String>);

/// Checks `[auth]`; key files are read relative to `base`.
pub(super) fn auth(raw: RawAuth, base: &Path) -> Result<Auth, Invalid> {
    let sources = [&raw.jwt_secret, &raw.jwt_secret_file, &raw.jwks_file];
    let given: Vec<&Spanned<String>> = sources.iter().filter_map(|s| s.as_ref()).collect();
    let keys = match (&raw.jwt_secret, &raw.jwt_secret_file, &raw.jwks_file) {
        _ if given.len() > 1 => {
            return Err((
                Some(given[1].span()),
                "[auth] takes one of jwt_secret, jwt_secret_file and jwks_file".into(),
                Some("keep the one that holds your key".into()),
            ))
        }
        (Some(secret), None, None) => Some(secret_key(secret.get_ref(), secret.span())?),
        (None, Some(file), None) => {
            let text = read(base, file)?;
            Some(secret_key(text.trim_end_matches(['\n', '\r']), file.span())?)
        }
        (None, None, Some(file)) => {
            let text = read(base, file)?;
            let set = serde_json::from_str(&text).map_err(|e| {
                (
                    Some(file.span()),
                    format!("{} is not a JWKS document: {e}", base.join(file.get_ref()).display()),
                    Some(
                        "give a JSON Web Key Set: {\"keys\": [{\"kty\": \"RSA\", \"kid\": …, \"n\": …, \"e\": …}]}"
                            .into(),
                    ),
                )
            })?;
            Some(Keys::Jwks(set))
        }
        _ if !raw.users.is_empty() => None,
        _ => {
            return Err((
                None,
                "[auth] needs a key to verify tokens, or users who log in with a password".into(),
                Some(
                    "set jwt_secret (HS256), jwt_secret_file, or jwks_file (RS256/ES256), or add [auth.users.NAME]"
                        .into(),
                ),
            ))
        }
    };
    let mut roles = BTreeMap::new();
    for (name, raw_role) in raw.roles {
        let span = raw_role.span();
        let raw_role = raw_role.into_inner();
        let mut masks = BTreeMap::new();
        for (target, mask) in raw_role.mask {
            let Some((view, column)) = target.split_once('.') else {
                return Err((
                    Some(mask.span()),
                    format!("mask key {target:?} names no column"),
                    Some("write \"view.column\" (or \"*.column\" for every view)".into()),
                ));
            };
            let parsed = Mask::parse(mask.get_ref()).ok_or_else(|| {
                (
                    Some(mask.span()),
                    format!("unknown mask {:?}", mask.get_ref()),
                    Some("use hash, redact or last4".into()),
                )
            })?;
            masks.insert((view.to_string(), column.to_string()), parsed);
        }
        let rows = match raw_role.rows {
            None => Vec::new(),
            Some(text) => RowFilter::parse_all(text.get_ref())
                .map_err(|e| (Some(text.span()), format!("[auth.roles.{name}] where: {e}"), None))?,
        };
        if name.is_empty() {
            return Err((Some(span), "a role needs a name".into(), None));
        }
        let views =
            raw_role.views.filter(|v| !v.iter().any(|n| n == "*")).map(|v| v.into_iter().collect::<BTreeSet<_>>());
        roles.insert(name, Role { views, masks, rows, monitor: raw_role.monitor, admin: raw_role.admin });
    }
    if let Some(anonymous) = &raw.anonymous_role {
        if !roles.contains_key(anonymous.get_ref()) {
            return Err((
                Some(anonymous.span()),
                format!("anonymous_role {:?} has no [auth.roles.{}] table", anonymous.get_ref(), anonymous.get_ref()),
                Some("add the role's table (an empty one grants every view)".into()),
            ));
        }
    }
    let mut users = BTreeMap::new();
    for (name, raw_user) in raw.users {
        let raw_user = raw_user.into_inner();
        let verifier = Verifier::parse(raw_user.password.get_ref()).map_err(|e| {
            (
                Some(raw_user.password.span()),
                format!("[auth.users.{name}] password: {e}"),
                Some("store a verifier, never the password: `denorm auth hash-password` prints one".into()),
            )
        })?;
        if !roles.contains_key(raw_user.role.get_ref()) {
            return Err((
                Some(raw_user.role.span()),
                format!(
                    "[auth.users.{name}] reads as role {:?}, which has no [auth.roles] table",
                    raw_user.role.get_ref()
                ),
                Some("add the role's table (an empty one grants every view)".into()),
            ));
        }
        let claims = serde_json::to_value(&raw_user.claims).unwrap_or(serde_json::Value::Null);
        users.insert(name, User { verifier, role: raw_user.role.into_inner(), claims });
    }
    let role_claim = raw.role_claim.map_or_else(|| "role".to_string(), Spanned::into_inner);
    Ok(Auth {
        keys,
        role_claim: role_claim.trim_start_matches('.').split('.').map(str::to_string).collect(),
        anonymous_role: raw.anonymous_role.map(Spanned::into_inner),
        audience: raw.audience,
        roles,
        users,
        verified: Default::default(),
    })
}

fn secret_key(secret: &str, span: Range<usize>) -> Result<Keys, Invalid> {
    if secret.len() < 32 {
        return Err((
            Some(span),
            format!("the JWT secret has {} bytes; HS256 needs at least 32", secret.len()),
            Some("generate one, e.g. `openssl rand -base64 32`".into()),
        ));
    }
    Ok(Keys::Secret(secret.as_bytes().to_vec()))
}

fn read(base: &Path, file: &Spanned<String>) -> Result<String, Invalid> {
    let path = base.join(file.get_ref());
    std::fs::read_to_string(&path)
        .map_err(|e| (Some(file.span()), format!("cannot read {}: {e}", path.display()), None))
}

/// Checks `[audit]`.
pub(super) fn audit(raw: RawAudit, base: &Path) -> AuditTarget {
    match raw.path.get_ref().as_str() {
        "-" => AuditTarget::Stdout,
        path => AuditTarget::File(base.join(path)),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{parse, Config, ConfigError};
    use super::*;

    const HEAD: &str = "views = [\"v.sql\"]\n[source]\nurl = \"sqlite://a.db\"\n";
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn parse_at(text: &str) -> Result<Config, ConfigError> {
        parse(&format!("{HEAD}{text}"), Path::new("conf/denorm.toml"))
    }

    fn error_of(text: &str) -> String {
        match parse_at(text) {
            Err(e @ ConfigError::Invalid { .. }) => e.to_string(),
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn roles_masks_and_row_filters() {
        let config = parse_at(&format!(
            "[auth]\njwt_secret = \"{SECRET}\"\nanonymous_role = \"anon\"\nrole_claim = \"app.role\"\n\
             [auth.roles.anon]\nviews = [\"stats\"]\n\
             [auth.roles.tenant]\nmask = {{ \"orders.email\" = \"last4\", \"*.phone\" = \"redact\" }}\n\
             where = \"tenant_id = claim.tenant_id\"\n\
             [auth.roles.ops]\nmonitor = true\nviews = [\"*\"]\n\
             [audit]\npath = \"audit.jsonl\"\n"
        ))
        .unwrap();
        let auth = config.auth.unwrap();
        assert_eq!(auth.role_claim, vec!["app".to_string(), "role".to_string()]);
        assert_eq!(auth.anonymous_role.as_deref(), Some("anon"));
        assert_eq!(auth.roles["anon"].views, Some(["stats".to_string()].into()));
        assert_eq!(auth.roles["ops"].views, None, "* grants every view");
        assert!(auth.roles["ops"].monitor);
        let tenant = &auth.roles["tenant"];
        assert_eq!(tenant.masks[&("*".to_string(), "phone".to_string())], Mask::Redact);
        assert_eq!(tenant.rows.len(), 1);
        assert_eq!(config.audit, Some(AuditTarget::File(Path::new("conf/audit.jsonl").to_path_buf())));
    }

    #[test]
    fn users_need_a_verifier_and_a_role() {
        let verifier = Verifier::with_salt("pencil", b"salt", 4096).encode();
        let config = parse_at(&format!(
            "[auth]\n[auth.roles.tenant]\nwhere = \"tenant_id = claim.tenant_id\"\n\
             [auth.users.ann]\npassword = \"{verifier}\"\nrole = \"tenant\"\nclaims = {{ tenant_id = 7 }}\n"
        ))
        .unwrap();
        let auth = config.auth.unwrap();
        assert!(auth.keys.is_none(), "users alone need no JWT key");
        assert_eq!(auth.users["ann"].claims, serde_json::json!({"tenant_id": 7}));
        assert!(auth.basic("ann", "pencil").is_ok());
        let cleartext = "[auth]\n[auth.roles.r]\n[auth.users.ann]\npassword = \"pencil\"\nrole = \"r\"\n";
        assert!(error_of(cleartext).contains("hash-password"));
        let no_role = format!("[auth]\n[auth.users.ann]\npassword = \"{verifier}\"\nrole = \"r\"\n");
        assert!(error_of(&no_role).contains("no [auth.roles] table"));
    }

    #[test]
    fn bad_auth_sections_say_what_to_do() {
        assert!(error_of("[auth]\n").contains("needs a key"));
        assert!(error_of("[auth]\njwt_secret = \"short\"\n").contains("at least 32"));
        assert!(error_of(&format!("[auth]\njwt_secret = \"{SECRET}\"\njwks_file = \"k.json\"\n")).contains("one of"));
        assert!(error_of("[auth]\njwt_secret_file = \"missing.txt\"\n").contains("cannot read conf/missing.txt"));
        assert!(error_of(&format!("[auth]\njwt_secret = \"{SECRET}\"\nanonymous_role = \"x\"\n"))
            .contains("has no [auth.roles.x] table"));
        let bad_mask =
            format!("[auth]\njwt_secret = \"{SECRET}\"\n[auth.roles.r]\nmask = {{ \"email\" = \"hash\" }}\n");
        assert!(error_of(&bad_mask).contains("names no column"));
        let bad_kind =
            format!("[auth]\njwt_secret = \"{SECRET}\"\n[auth.roles.r]\nmask = {{ \"v.email\" = \"blur\" }}\n");
        assert!(error_of(&bad_kind).contains("use hash, redact or last4"));
        let bad_where = format!("[auth]\njwt_secret = \"{SECRET}\"\n[auth.roles.r]\nwhere = \"a < 1\"\n");
        assert!(error_of(&bad_where).contains("where:"));
        assert!(error_of(&format!("[auth]\njwt_secret = \"{SECRET}\"\nrolez = 1\n")).contains("unknown field"));
    }
}
