//! Flags; every one also reads an environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use sealant_core::scope::is_dns_label;

/// The Sealant controller: unseals SealedSecrets into Secrets, owns them, corrects drift, and
/// keeps this cluster's age keys. Runs in a cluster under its ServiceAccount, or outside one
/// with a kubeconfig (--kubeconfig, else KUBECONFIG, else ~/.kube/config).
#[derive(Parser, Debug)]
#[command(
    name = "seal-controller",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "\
Examples:
  seal-controller                               # in a Pod: namespace from POD_NAMESPACE
  seal-controller --kubeconfig ~/.kube/config --context dev --leader-elect=false
  seal-controller rotate                        # what the rotation CronJob runs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Make a new active key now; the previous active keys become retired (they still open).
    #[command(after_help = "Examples:\n  seal-controller rotate --namespace sealant-system")]
    Rotate(CommonArgs),
    /// Print the SealedSecret CRD.
    #[command(after_help = "Examples:\n  seal-controller crd | kubectl apply -f -")]
    Crd,
    /// Store Bitnami Sealed Secrets keys for --bitnami: one Secret per RSA key in the
    /// controller's namespace, labelled sealant.dev/bitnami-key=true. They only open Bitnami
    /// SealedSecrets; Sealant never seals with them. Importing a key again changes nothing.
    #[command(after_help = "\
Examples:
  kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml \\
    | seal-controller import-bitnami-keys -
  seal-controller import-bitnami-keys backup.yaml --namespace sealant-system")]
    ImportBitnamiKeys(ImportBitnamiKeysArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ImportBitnamiKeysArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The key backup: kubectl's YAML or JSON of Bitnami's key Secrets (one, or a List), or
    /// PEM RSA private keys; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// The controller's namespace: where its keys and lease live. Not the kubeconfig context's
    /// namespace: keys made in the wrong namespace would split the cluster's keys in two.
    #[arg(long, env = "POD_NAMESPACE", default_value = sealant_core::keystore::DEFAULT_NAMESPACE, value_parser = dns_label)]
    pub namespace: String,
    /// The kubeconfig file to use outside a cluster, instead of $KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE", env = "SEALANT_KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context to use (default: the current one).
    #[arg(long, value_name = "NAME", env = "SEALANT_CONTEXT")]
    pub context: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "SEALANT_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Watch only these namespaces; default all. Repeat the flag or separate them with commas
    /// (as in SEALANT_WATCH_NAMESPACES): a namespace never holds one.
    #[arg(long, env = "SEALANT_WATCH_NAMESPACES", value_delimiter = ',', value_parser = dns_label)]
    pub namespaces: Vec<String>,
    /// Reconcile only SealedSecrets matching this label selector.
    #[arg(long, env = "SEALANT_LABEL_SELECTOR")]
    pub label_selector: Option<String>,
    /// Make a new key this often (e.g. 720h); 0 turns renewal off.
    #[arg(long, env = "SEALANT_KEY_RENEW_PERIOD", default_value = "720h", value_parser = parse_duration)]
    pub key_renew_period: Duration,
    /// At start, make a new key if the newest is older than this time (RFC 3339).
    #[arg(long, env = "SEALANT_KEY_CUTOFF_TIME", value_parser = parse_time)]
    pub key_cutoff_time: Option<Timestamp>,
    /// Re-check every SealedSecret this often, to catch anything a watch missed; 0 turns it off.
    #[arg(long, env = "SEALANT_RESYNC_PERIOD", default_value = "10m", value_parser = parse_duration)]
    pub resync_period: Duration,
    /// SealedSecrets reconciled at once. Each reconcile in flight holds its own connection to
    /// the API server, so this also bounds the controller's connections.
    #[arg(long, env = "SEALANT_WORKERS", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// Address of the HTTP server (health, metrics, recipients, verify, reencrypt).
    #[arg(long, env = "SEALANT_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,
    /// Elect a leader among replicas through a Lease; only the leader reconciles.
    #[arg(long, env = "SEALANT_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// The Lease's name.
    #[arg(long, env = "SEALANT_LEASE_NAME", default_value = "sealant-controller")]
    pub lease_name: String,
    /// How long a leader's Lease lasts without renewal: a standby takes over after this.
    #[arg(long, env = "SEALANT_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// A leader that has not renewed its Lease for this long stops all leader work (and
    /// writes nothing) until it holds the Lease again. Must be shorter than --lease-duration,
    /// so the old leader has stopped before a standby may take over.
    #[arg(long, env = "SEALANT_LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub lease_renew_deadline: Duration,
    /// How often each replica tries to acquire or renew the Lease. Must be shorter than
    /// --lease-renew-deadline.
    #[arg(long, env = "SEALANT_LEASE_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub lease_retry_period: Duration,
    /// This replica's identity in the Lease (default: POD_NAME, else the host name and pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Let templates produce Secrets of this restricted type (kubernetes.io/service-account-token,
    /// bootstrap.kubernetes.io/token), which make the cluster mint or honour credentials. Repeatable.
    #[arg(long = "allow-secret-type", value_name = "TYPE", env = "SEALANT_ALLOW_SECRET_TYPES", value_delimiter = ',', value_parser = restricted_type)]
    pub allow_secret_types: Vec<String>,
    /// Also reconcile Bitnami SealedSecrets (bitnami.com/v1alpha1) as Bitnami's controller
    /// would, with the keys `import-bitnami-keys` stored. Needs the RBAC of
    /// deploy/components/bitnami.
    #[arg(long, env = "SEALANT_BITNAMI", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub bitnami: bool,
    /// Requests per second `/v1/verify` accepts.
    #[arg(long, env = "SEALANT_VERIFY_RATE", default_value_t = 10)]
    pub verify_rate: u32,
    /// Requests per second `/v1/reencrypt` accepts.
    #[arg(long, env = "SEALANT_REENCRYPT_RATE", default_value_t = crate::http::DEFAULT_REENCRYPT_PER_SECOND)]
    pub reencrypt_rate: u32,
    /// Request bodies (`/v1/verify`, `/v1/reencrypt`) read and worked on at once; more get 429
    /// with Retry-After. Each can hold 2 MiB and its copies: this bounds the memory they take.
    #[arg(long, env = "SEALANT_MAX_BODIES_IN_FLIGHT", default_value_t = crate::http::DEFAULT_MAX_BODIES_IN_FLIGHT, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_bodies_in_flight: u16,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A Secret type `--allow-secret-type` can allow: only restricted types need allowing.
fn restricted_type(s: &str) -> Result<String, String> {
    let restricted = sealant_core::reconcile::RESTRICTED_SECRET_TYPES;
    if restricted.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "'{s}' needs no allowing: only {} are restricted",
            restricted.join(" and ")
        ))
    }
}

/// A namespace: an RFC 1123 label.
pub fn dns_label(s: &str) -> Result<String, String> {
    is_dns_label(s).then(|| s.to_owned()).ok_or_else(|| {
        format!("'{s}' is not a namespace (lowercase letters, digits and '-', at most 63)")
    })
}

/// An RFC 3339 time such as `2026-01-31T00:00:00Z`.
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    s.trim().parse().map_err(|_| {
        format!("'{s}' is not an RFC 3339 time with a zone (e.g. 2026-01-31T00:00:00Z)")
    })
}

/// `720h`, `10m`, `15s`, `1h30m`, or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let d: SignedDuration = s
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 720h, 10m, 15s)"))?;
    Duration::try_from(d).map_err(|_| format!("'{s}' must not be negative"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("720h"), Ok(Duration::from_secs(720 * 3600)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn times_and_namespaces() {
        assert!(parse_time("2026-01-31T00:00:00Z").is_ok());
        assert!(parse_time("2026-01-31T01:00:00+01:00").is_ok());
        assert!(parse_time("2026-01-31").is_err());
        assert!(dns_label("sealant-system").is_ok());
        assert!(dns_label("Bad_NS").is_err());
        assert!(dns_label("").is_err());
    }
}
