//! Secrets: create, list, update, rotate, delete, group attachments and import.

use std::collections::BTreeSet;

use super::api::{ImportFailure, ImportSummary, SecretCreated, SecretDeleted, SecretInfo, scope_fields};
use super::{Vault, record, seal_secret, secret_by_id_w, secret_ref};
use crate::audit::AuditEvent;
use crate::crypto;
use crate::error::{Error, Result};
use crate::scope::Scope;
use crate::secret::SecretBytes;
use crate::store::{AttachmentRow, BindingRow, CredentialRow, ReadTx, SecretRow, WriteTx, keys};
use crate::time::{now_ms, rfc3339};

/// Which secrets `list` shows.
#[derive(Clone, Debug, Default)]
pub struct SecretFilter {
    pub scope: Option<Scope>,
}

/// What `secrets create` (and each line of an import) asks for.
#[derive(Clone, Copy)]
pub(super) struct NewSecret<'a> {
    pub name: &'a str,
    pub value: &'a SecretBytes,
    pub scope: &'a Scope,
    pub aliases: &'a [String],
    /// Narrows the provisioned registry credential (`--host`).
    pub hosts: &'a [String],
    /// An external secret: `value` is what the source gave now (to check templates), never stored.
    pub source: Option<&'a crate::source::Source>,
}

impl Vault {
    /// Creates a secret; pins and provisions when a registry provider claims its name.
    pub fn secret_create(
        &self,
        name: &str,
        value: SecretBytes,
        scope: Scope,
        aliases: &[String],
        hosts: &[String],
    ) -> Result<SecretCreated> {
        let new = NewSecret { name, value: &value, scope: &scope, aliases, hosts, source: None };
        self.store.write(|tx| self.create_in_tx(tx, &new, false))
    }

    /// Creates a read-only secret whose value lives in an external source (fetched once now, to
    /// check that it works; never stored).
    pub fn secret_create_external(
        &self,
        name: &str,
        source: crate::source::Source,
        scope: Scope,
        aliases: &[String],
        hosts: &[String],
    ) -> Result<SecretCreated> {
        let value = super::external::fetch(&source)
            .map_err(|why| Error::invalid(format!("the source for {name} ({source}) failed: {why}")))?;
        let new = NewSecret { name, value: &value, scope: &scope, aliases, hosts, source: Some(&source) };
        self.store.write(|tx| self.create_in_tx(tx, &new, false))
    }

    pub(super) fn create_in_tx(
        &self,
        tx: &mut WriteTx,
        new: &NewSecret<'_>,
        rotate_existing: bool,
    ) -> Result<SecretCreated> {
        let NewSecret { name, value, scope, aliases, hosts, source } = *new;
        check_name("secret name", name)?;
        if value.is_empty() {
            return Err(Error::invalid(format!("the value for {name} is empty")));
        }
        let aliases = dedup_aliases(name, aliases)?;
        if let Some(existing) = tx.name_owner(&keys::name(scope, name))? {
            let row = secret_by_id_w(tx, &existing)?;
            if rotate_existing && row.name == name && row.source.is_none() && source.is_none() {
                let row = self.rotate_in_tx(tx, row, value)?;
                let (provisioned, waiting, warnings) = self.provision(tx, &row, hosts)?;
                let secret = info(tx, &row)?;
                return Ok(SecretCreated { secret, action: "rotated", provisioned, waiting, warnings });
            }
            return Err(Error::Conflict(format!(
                "a secret or alias named {name} already exists in scope {scope} ({}); rotate it with \
                 `aivault secrets rotate --id {existing}` or delete it first",
                secret_ref(&existing)
            )));
        }
        for a in &aliases {
            if let Some(owner) = tx.name_owner(&keys::name(scope, a))? {
                return Err(Error::Conflict(format!(
                    "alias {a} is already used in scope {scope} by {}",
                    secret_ref(&owner)
                )));
            }
        }
        let pinned = self.registry.claim(name).map(|c| c.pin.clone());
        let id = crypto::random_id("sec_")?;
        let now = now_ms();
        // An external secret keeps nothing: its sealed value is empty.
        let stored: &[u8] = if source.is_some() { b"" } else { value.expose() };
        let sealed = seal_secret(&self.key, &id, 1, scope, pinned.as_deref(), stored)?;
        let row = SecretRow {
            id: id.clone(),
            name: name.to_owned(),
            aliases: aliases.clone(),
            scope: scope.clone(),
            pinned_provider: pinned.clone(),
            version: 1,
            sealed,
            source: source.cloned(),
            created_ms: now,
            updated_ms: now,
        };
        tx.put(&id, &row)?;
        tx.put_name(&keys::name(scope, name), &id)?;
        for a in &aliases {
            tx.put_name(&keys::name(scope, a), &id)?;
        }
        let mut event = AuditEvent::new("secret.create").secret(&id).detail(format!("{name} in {scope}"));
        if let Some(p) = &pinned {
            event.detail = Some(format!("{name} in {scope}, pinned to {p}"));
        }
        record(tx, event)?;
        let (provisioned, waiting, warnings) = self.provision(tx, &row, hosts)?;
        Ok(SecretCreated { secret: info(tx, &row)?, action: "created", provisioned, waiting, warnings })
    }

    /// Secret metadata, never values.
    pub fn secrets_list(&self, filter: &SecretFilter) -> Result<Vec<SecretInfo>> {
        self.store
            .read(|tx| {
                let mut rows = tx.list::<SecretRow>()?;
                if let Some(scope) = &filter.scope {
                    rows.retain(|r| &r.scope == scope);
                }
                rows.sort_by(|a, b| (&a.scope, &a.name).cmp(&(&b.scope, &b.name)));
                rows.iter().map(|r| info_r(tx, r)).collect::<Result<Vec<_>, _>>()
            })
            .map_err(Error::from)
    }

    /// Renames a secret or changes its aliases. The value is untouched.
    pub fn secret_update(
        &self,
        id: &str,
        new_name: Option<&str>,
        add_aliases: &[String],
        clear_aliases: bool,
    ) -> Result<SecretInfo> {
        if new_name.is_none() && add_aliases.is_empty() && !clear_aliases {
            return Err(Error::invalid("nothing to update: pass --name, --alias or --clear-aliases"));
        }
        self.store.write(|tx| {
            let mut row = secret_by_id_w(tx, id)?;
            managed_upstream(&row)?;
            let old_keys: Vec<String> =
                std::iter::once(&row.name).chain(&row.aliases).map(|n| keys::name(&row.scope, n)).collect();
            if let Some(name) = new_name {
                check_name("secret name", name)?;
                if name != row.name {
                    if let Some(pin) = &row.pinned_provider {
                        return Err(Error::invalid(format!(
                            "{} is pinned to provider {pin}; its name is what the registry matches and cannot change",
                            row.name
                        )));
                    }
                    if let Some(claim) = self.registry.claim(name) {
                        return Err(Error::invalid(format!(
                            "{name} is claimed by registry provider {}; create a new secret with that name so it is pinned",
                            claim.pin
                        )));
                    }
                    row.name = name.to_owned();
                }
            }
            if clear_aliases {
                row.aliases.clear();
            }
            for a in add_aliases {
                check_name("alias", a)?;
                if !row.aliases.contains(a) && *a != row.name {
                    row.aliases.push(a.clone());
                }
            }
            for k in &old_keys {
                tx.delete_name(k)?;
            }
            for n in std::iter::once(&row.name).chain(&row.aliases) {
                let key = keys::name(&row.scope, n);
                if let Some(owner) = tx.name_owner(&key)? {
                    return Err(Error::Conflict(format!(
                        "{n} is already used in scope {} by {}",
                        row.scope,
                        secret_ref(&owner)
                    )));
                }
                tx.put_name(&key, &row.id)?;
            }
            row.updated_ms = now_ms();
            tx.put(&row.id, &row)?;
            record(tx, AuditEvent::new("secret.update").secret(&row.id).detail(row.name.clone()))?;
            info(tx, &row)
        })
    }

    /// A secret's value, for the operator (`secrets reveal`); every reveal is a security event.
    pub fn secret_reveal(&self, id: &str) -> Result<(SecretInfo, SecretBytes)> {
        self.store.write(|tx| {
            let row = secret_by_id_w(tx, id)?;
            let value = self.open_secret(&row)?;
            record(tx, AuditEvent::new("secret.reveal").secret(&row.id).detail(row.name.clone()))?;
            Ok((info(tx, &row)?, value))
        })
    }

    /// Replaces a secret's value with a fresh data key and a new version.
    pub fn secret_rotate(&self, id: &str, value: SecretBytes) -> Result<SecretInfo> {
        if value.is_empty() {
            return Err(Error::invalid("the new value is empty"));
        }
        self.store.write(|tx| {
            let row = secret_by_id_w(tx, id)?;
            let row = self.rotate_in_tx(tx, row, &value)?;
            info(tx, &row)
        })
    }

    fn rotate_in_tx(&self, tx: &mut WriteTx, mut row: SecretRow, value: &SecretBytes) -> Result<SecretRow> {
        managed_upstream(&row)?;
        row.version += 1;
        row.sealed =
            seal_secret(&self.key, &row.id, row.version, &row.scope, row.pinned_provider.as_deref(), value.expose())?;
        row.updated_ms = now_ms();
        tx.put(&row.id, &row)?;
        record(
            tx,
            AuditEvent::new("secret.rotate")
                .secret(&row.id)
                .detail(format!("{} now version {}", row.name, row.version)),
        )?;
        Ok(row)
    }

    /// Deletes a secret and everything that depended on it. The name is free again afterwards.
    pub fn secret_delete(&self, id: &str) -> Result<SecretDeleted> {
        self.store.write(|tx| delete_in_tx(tx, id))
    }

    /// Attaches a secret to a group, so credentials reading it count at that group's level.
    pub fn secret_attach(&self, id: &str, workspace: &str, group: &str, attach: bool) -> Result<SecretInfo> {
        crate::scope::check_id("workspace id", workspace)?;
        crate::scope::check_id("group id", group)?;
        self.store.write(|tx| {
            let row = secret_by_id_w(tx, id)?;
            let target = Scope::Group { workspace_id: workspace.to_owned(), group_id: group.to_owned() };
            if !row.scope.readable_from(&target) {
                return Err(Error::invalid(format!(
                    "secret {} lives in {} and cannot be attached to group {workspace}/{group}",
                    row.name, row.scope
                )));
            }
            let key = keys::attachment(&row.id, workspace, group);
            if attach {
                if tx.get::<AttachmentRow>(&key)?.is_some() {
                    return Err(Error::Conflict(format!("{} is already attached to {workspace}/{group}", row.name)));
                }
                let a = AttachmentRow {
                    secret_id: row.id.clone(),
                    workspace_id: workspace.to_owned(),
                    group_id: group.to_owned(),
                    created_ms: now_ms(),
                };
                tx.put(&key, &a)?;
            } else if !tx.delete::<AttachmentRow>(&key)? {
                return Err(Error::not_found("attachment", format!("{}@{workspace}/{group}", row.name), ""));
            }
            let kind = if attach { "secret.attach" } else { "secret.detach" };
            record(tx, AuditEvent::new(kind).secret(&row.id).detail(format!("{workspace}/{group}")))?;
            info(tx, &row)
        })
    }

    /// Imports `KEY=VALUE` entries, each handled like `create` (an existing name in the scope is
    /// rotated). All or nothing: if any entry is bad, every failure is reported and nothing changes.
    pub fn secrets_import(&self, entries: Vec<(String, SecretBytes)>, scope: Scope) -> Result<ImportSummary> {
        let mut failures = Vec::new();
        let mut seen = BTreeSet::new();
        for (name, value) in &entries {
            let problem = if let Err(e) = check_name("secret name", name) {
                Some(e.to_string())
            } else if value.is_empty() {
                Some("empty value".to_owned())
            } else if !seen.insert(name.clone()) {
                Some("listed twice".to_owned())
            } else {
                None
            };
            if let Some(error) = problem {
                failures.push(ImportFailure { name: name.clone(), error });
            }
        }
        if entries.is_empty() {
            return Err(Error::invalid("nothing to import: pass --entry KEY=VALUE (repeatable)"));
        }
        if !failures.is_empty() {
            return Ok(ImportSummary { created: 0, rotated: 0, failed: failures.len(), entries: vec![], failures });
        }
        let done = self.store.write(|tx| {
            let mut out = Vec::new();
            for (name, value) in &entries {
                out.push(self.create_in_tx(
                    tx,
                    &NewSecret { name, value, scope: &scope, aliases: &[], hosts: &[], source: None },
                    true,
                )?);
            }
            Ok::<_, Error>(out)
        })?;
        let created = done.iter().filter(|e| e.action == "created").count();
        Ok(ImportSummary { created, rotated: done.len() - created, failed: 0, entries: done, failures })
    }
}

/// Names and aliases: 1-128 characters of letters, digits, '_', '-', '.'.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid {what} '{name}': use letters, digits, '_', '-' or '.', starting with a letter or digit"
        )))
    }
}

fn dedup_aliases(name: &str, aliases: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for a in aliases {
        check_name("alias", a)?;
        if a != name && !out.contains(a) {
            out.push(a.clone());
        }
    }
    Ok(out)
}

fn attachments_of(list: Vec<AttachmentRow>, id: &str) -> Vec<String> {
    list.into_iter().filter(|a| a.secret_id == id).map(|a| format!("{}/{}", a.workspace_id, a.group_id)).collect()
}

fn build_info(row: &SecretRow, attached_groups: Vec<String>) -> SecretInfo {
    let (scope, workspace_id, group_id) = scope_fields(&row.scope);
    SecretInfo {
        id: row.id.clone(),
        reference: secret_ref(&row.id),
        name: row.name.clone(),
        aliases: row.aliases.clone(),
        scope,
        workspace_id,
        group_id,
        pinned_provider: row.pinned_provider.clone(),
        version: row.version,
        attached_groups,
        created_at: rfc3339(row.created_ms),
        updated_at: rfc3339(row.updated_ms),
        source: row.source.as_ref().map(ToString::to_string),
    }
}

pub(super) fn info(tx: &WriteTx, row: &SecretRow) -> Result<SecretInfo> {
    Ok(build_info(row, attachments_of(tx.list::<AttachmentRow>()?, &row.id)))
}

fn info_r(tx: &ReadTx, row: &SecretRow) -> Result<SecretInfo, crate::store::StoreError> {
    Ok(build_info(row, attachments_of(tx.list::<AttachmentRow>()?, &row.id)))
}

/// `secret_delete` inside the caller's transaction (a proposal's approval).
pub(super) fn delete_in_tx(tx: &mut WriteTx, id: &str) -> Result<SecretDeleted> {
    let row = secret_by_id_w(tx, id)?;
    tx.delete::<SecretRow>(&row.id)?;
    for n in std::iter::once(&row.name).chain(&row.aliases) {
        tx.delete_name(&keys::name(&row.scope, n))?;
    }
    let mut removed_credentials = Vec::new();
    for cred in tx.list::<CredentialRow>()? {
        if cred.secrets.values().any(|s| *s == row.id) {
            tx.delete::<CredentialRow>(&cred.id)?;
            removed_credentials.push(cred.id);
        }
    }
    let mut removed_bindings = Vec::new();
    for b in tx.list::<BindingRow>()? {
        if b.secret_id == row.id {
            tx.delete::<BindingRow>(&keys::binding(&b.capability, &b.scope))?;
            removed_bindings.push(format!("{} ({})", b.capability, b.scope));
        }
    }
    let mut removed_attachments = 0;
    for a in tx.list::<AttachmentRow>()? {
        if a.secret_id == row.id {
            tx.delete::<AttachmentRow>(&keys::attachment(&a.secret_id, &a.workspace_id, &a.group_id))?;
            removed_attachments += 1;
        }
    }
    let detail = format!(
        "{}; removed credentials [{}], bindings [{}]",
        row.name,
        removed_credentials.join(", "),
        removed_bindings.join(", ")
    );
    record(tx, AuditEvent::new("secret.delete").secret(&row.id).detail(detail))?;
    Ok(SecretDeleted { id: row.id, name: row.name, removed_credentials, removed_bindings, removed_attachments })
}

/// An external secret is read-only here: it changes where it lives.
fn managed_upstream(row: &SecretRow) -> Result<()> {
    match &row.source {
        Some(source) => Err(Error::Conflict(format!(
            "secret {} is managed upstream ({source}); change it there (nothing was changed)",
            row.name
        ))),
        None => Ok(()),
    }
}
