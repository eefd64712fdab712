//! `aivault credential ...`

use clap::Subcommand;

use super::render::{self, Out, scope_text};
use crate::config::Config;
use crate::error::Result;
use crate::service::{CredentialSpec, Vault};

// Parsed once per process; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum CredentialCmd {
    /// Create a credential (custom providers, per-tenant hosts, extra accounts, scoped overrides).
    Create {
        /// The new credential's id (referenced by capabilities with --credential).
        id: String,
        /// The provider: a registry provider's id, or a new name for a custom API.
        #[arg(long)]
        provider: String,
        /// vault:secret:<id>
        #[arg(long)]
        secret_ref: String,
        /// header, query, path, basic, multi-header, multi-query, oauth2 or aws-sigv4 (inherited for registry providers).
        #[arg(long)]
        auth: Option<String>,
        /// Header the header strategy writes (default authorization).
        #[arg(long)]
        header_name: Option<String>,
        /// e.g. "Bearer {{secret}}" (header, query) or "/bot{{secret}}" (path).
        #[arg(long)]
        value_template: Option<String>,
        /// Query parameter the query strategy writes (default api_key).
        #[arg(long)]
        query_param: Option<String>,
        /// NAME=TEMPLATE for multi-header (repeatable).
        #[arg(long = "auth-header")]
        auth_headers: Vec<String>,
        /// NAME=TEMPLATE for multi-query (repeatable).
        #[arg(long = "auth-query")]
        auth_queries: Vec<String>,
        /// refresh_token or client_credentials (oauth2).
        #[arg(long)]
        grant_type: Option<String>,
        /// OAuth2 token endpoint (--auth oauth2).
        #[arg(long)]
        token_endpoint: Option<String>,
        /// OAuth2 authorization endpoint, for `oauth connect` (--auth oauth2).
        #[arg(long)]
        authorization_endpoint: Option<String>,
        /// OAuth scope (repeatable).
        #[arg(long = "oauth-scope")]
        scopes: Vec<String>,
        /// basic or form: how the client authenticates at the token endpoint.
        #[arg(long)]
        client_auth: Option<String>,
        /// Endpoint prefix or signing name (bedrock-runtime signs as bedrock).
        #[arg(long)]
        aws_service: Option<String>,
        /// AWS region to sign for (--auth aws-sigv4).
        #[arg(long)]
        aws_region: Option<String>,
        /// Allowed host (repeatable); registry providers can only narrow their hosts.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Create it in this workspace's scope.
        #[arg(long)]
        workspace_id: Option<String>,
        /// Create it in this group's scope (needs --workspace-id).
        #[arg(long)]
        group_id: Option<String>,
    },
    /// List credentials.
    List {
        /// Full JSON detail.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Delete a credential (its capabilities stop being served).
    Delete {
        /// The credential id.
        id: String,
    },
}

pub fn run(cfg: &Config, out: Out, cmd: CredentialCmd) -> Result<()> {
    match cmd {
        CredentialCmd::Create {
            id,
            provider,
            secret_ref,
            auth,
            header_name,
            value_template,
            query_param,
            auth_headers,
            auth_queries,
            grant_type,
            token_endpoint,
            authorization_endpoint,
            scopes,
            client_auth,
            aws_service,
            aws_region,
            hosts,
            workspace_id,
            group_id,
        } => {
            let spec = CredentialSpec {
                id,
                provider,
                secret_ref,
                auth,
                header_name,
                value_template,
                query_param,
                auth_headers,
                auth_queries,
                grant_type,
                token_endpoint,
                authorization_endpoint,
                scopes,
                client_auth,
                aws_service,
                aws_region,
                hosts,
                workspace_id,
                group_id,
            };
            let info = Vault::open(cfg)?.credential_create(&spec)?;
            out.show(&info, false, || {
                render::line(&format!(
                    "Credential created: {} (provider {}, {}, hosts {}, scope {})",
                    info.id,
                    info.provider,
                    info.auth_detail,
                    info.hosts.join(", "),
                    scope_text(info.scope, &info.workspace_id, &info.group_id)
                ));
            });
        }
        CredentialCmd::List { verbose } => {
            let list = Vault::open(cfg)?.credentials_list()?;
            out.show(&list, verbose, || {
                if list.is_empty() {
                    render::line("No credentials. Store a registry secret or run `aivault credential create`.");
                    return;
                }
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.clone(),
                            c.provider.clone(),
                            c.auth.to_owned(),
                            scope_text(c.scope, &c.workspace_id, &c.group_id),
                            c.origin.to_owned(),
                            render::list_cell(&c.hosts, 40),
                        ]
                    })
                    .collect();
                render::table(&["ID", "PROVIDER", "AUTH", "SCOPE", "ORIGIN", "HOSTS"], &rows);
            });
        }
        CredentialCmd::Delete { id } => {
            let info = Vault::open(cfg)?.credential_delete(&id)?;
            out.show(&info, false, || render::line(&format!("Credential deleted: {}", info.id)));
        }
    }
    Ok(())
}
