//! The command line: every flag also reads an environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sealant_core::Scope;
use sealant_core::keystore::DEFAULT_NAMESPACE;
use sealant_core::scope::is_dns_label;

const SEAL_EXAMPLES: &str = "\
Examples:
  kubectl create secret generic db --from-literal=password=s3cr3t -n prod --dry-run=client -o yaml \\
    | seal -r age1… > db.sealed.yaml
  seal secret.yaml -w clusters/prod/db.sealed.yaml      # recipients from .sealant.yaml
  seal -R prod.recipients --scope namespace-wide secrets/*.yaml -o json
  seal secret.yaml --context prod    # no -r, -R or .sealant.yaml: the cluster's recipients

Recipients come from -r/-R, else from the repo config, else from the cluster (as `seal
fetch-keys` prints them).

Exit codes: 0 success, 1 bad input or failure (nothing written), 2 usage error.";

/// Encrypt Kubernetes Secrets into SealedSecrets that are safe to commit.
///
/// Reads Secrets (YAML stream, JSON or a v1 List; stdin when no FILE is given) and writes
/// SealedSecrets whose values only the cluster(s) holding the matching age keys can open.
#[derive(Parser, Debug)]
#[command(name = "seal", version, after_help = SEAL_EXAMPLES, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Secret manifests to seal; stdin when none is given.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub sealing: SealingArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Seal Secrets that have no data (normally refused as a likely mistake).
    #[arg(long, env = "SEAL_ALLOW_EMPTY")]
    pub allow_empty: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Who can open what is sealed: `-r`, `-R`, or the repo config.
#[derive(Args, Debug, Clone)]
pub struct SealToArgs {
    /// An age recipient (age1…) to seal to; repeat for several clusters or a break-glass key.
    /// Several may also be separated by commas (as in SEAL_RECIPIENTS): an age1… recipient
    /// never holds one.
    #[arg(
        short = 'r',
        long = "recipient",
        value_name = "AGE1",
        env = "SEAL_RECIPIENTS",
        value_delimiter = ','
    )]
    pub recipients: Vec<String>,
    /// A file of recipients, one per line; `#` starts a comment. Repeatable; each value is one
    /// path, commas included.
    #[arg(
        short = 'R',
        long = "recipients-file",
        value_name = "FILE",
        env = "SEAL_RECIPIENTS_FILE"
    )]
    pub recipients_files: Vec<PathBuf>,
    /// The repo config to take recipients from (default: .sealant.yaml here or in a parent directory).
    #[arg(long, value_name = "FILE", env = "SEAL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Item values given on the command line.
#[derive(Args, Debug, Clone)]
pub struct ItemArgs {
    /// An item as KEY=VALUE. Repeatable; the value is taken whole, commas included (as kubectl
    /// does).
    #[arg(
        long = "from-literal",
        value_name = "KEY=VALUE",
        env = "SEAL_FROM_LITERAL"
    )]
    pub literals: Vec<String>,
    /// An item from a file, as [KEY=]PATH (KEY defaults to the file name). Repeatable; the
    /// path is taken whole, commas included.
    #[arg(long = "from-file", value_name = "[KEY=]PATH", env = "SEAL_FROM_FILE")]
    pub files: Vec<String>,
}

/// Who can open what is sealed, and how tightly it is bound.
#[derive(Args, Debug, Clone)]
pub struct SealingArgs {
    #[command(flatten)]
    pub to: SealToArgs,
    /// What each value is bound to [default: strict, or what an input Secret's
    /// sealedsecrets.bitnami.com/namespace-wide or cluster-wide annotation says].
    #[arg(long, value_enum, env = "SEAL_SCOPE")]
    pub scope: Option<ScopeArg>,
    /// Namespace for Secrets that name none (an explicit, different one is an error). Default:
    /// the kubeconfig context's namespace (else `default`), as kubectl; none without a kubeconfig.
    #[arg(short = 'n', long, env = "SEAL_NAMESPACE")]
    pub namespace: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml, env = "SEAL_OUTPUT")]
    pub format: Format,
    /// Write to FILE (atomically, and only if everything succeeded) instead of stdout.
    #[arg(short = 'w', long = "write", value_name = "FILE", env = "SEAL_WRITE")]
    pub write: Option<PathBuf>,
}

impl SealingArgs {
    /// `--scope`, or strict.
    pub fn scope_or_strict(&self) -> Scope {
        self.scope.map(Scope::from).unwrap_or_default()
    }
}

/// How to reach the cluster and its controller.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Cluster access")]
pub struct ClusterArgs {
    /// The kubeconfig file to use, instead of $KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE", env = "SEAL_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current one). Its namespace is the default
    /// for -n.
    #[arg(long, value_name = "NAME", env = "SEAL_CONTEXT")]
    pub context: Option<String>,
    /// The namespace the Sealant controller runs in.
    #[arg(
        long,
        value_name = "NAMESPACE",
        env = "SEAL_CONTROLLER_NAMESPACE",
        default_value = DEFAULT_NAMESPACE,
        value_parser = dns_label
    )]
    pub controller_namespace: String,
    /// The name of the controller's Service.
    #[arg(
        long,
        value_name = "NAME",
        env = "SEAL_CONTROLLER_NAME",
        default_value = "seal-controller",
        value_parser = dns_label
    )]
    pub controller_name: String,
    /// Talk to the controller's HTTP API at URL (e.g. a `kubectl port-forward`) instead of
    /// through the API server's service proxy; no kubeconfig is needed then.
    #[arg(
        long,
        value_name = "URL",
        env = "SEAL_CONTROLLER_URL",
        value_parser = controller_url
    )]
    pub controller_url: Option<http::Uri>,
}

/// A namespace or Service name: an RFC 1123 label.
fn dns_label(s: &str) -> Result<String, String> {
    is_dns_label(s)
        .then(|| s.to_owned())
        .ok_or_else(|| "expected lowercase letters, digits and '-', at most 63".into())
}

fn controller_url(s: &str) -> Result<http::Uri, String> {
    let bad = || format!("expected http://HOST[:PORT][/PATH] or https://…, got '{s}'");
    let uri: http::Uri = s.parse().map_err(|_| bad())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) || uri.query().is_some() {
        return Err(bad());
    }
    Ok(uri)
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeArg {
    Strict,
    NamespaceWide,
    ClusterWide,
}

impl From<ScopeArg> for Scope {
    fn from(s: ScopeArg) -> Scope {
        match s {
            ScopeArg::Strict => Scope::Strict,
            ScopeArg::NamespaceWide => Scope::NamespaceWide,
            ScopeArg::ClusterWide => Scope::ClusterWide,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Seal a new Secret from literals and files, with no plaintext file on disk.
    #[command(after_help = "\
Examples:
  seal create db -n prod --from-literal username=admin --from-file password=./pw.txt -r age1…
  seal create tls -n web --type kubernetes.io/tls --from-file tls.crt=cert.pem --from-file tls.key=key.pem \\
    -w clusters/prod/tls.sealed.yaml")]
    Create(CreateArgs),
    /// Seal one value read from stdin and print it (base64), for pasting into encryptedData.
    #[command(after_help = "\
Examples:
  printf %s \"$TOKEN\" | seal raw --name api -n prod -r age1…
  seal raw --scope cluster-wide -R keys.txt < ca.pem

The value must also be listed under spec.recipients.<item> with the recipients it was sealed
to; `seal merge` does both for you.")]
    Raw(RawArgs),
    /// Add, replace or remove items of a SealedSecret file in place; untouched items keep their ciphertext.
    #[command(after_help = "\
Examples:
  kubectl create secret generic db --from-literal=password=n3w --dry-run=client -o yaml | seal merge db.sealed.yaml
  seal merge db.sealed.yaml --from-literal api-key=abc123 --remove old-key

New items are sealed to -r/-R, to the repo config's recipients, or else to the recipients the
file's items are already sealed to.")]
    Merge(MergeArgs),
    /// Open SealedSecrets with a backed-up identity and print the Secrets (recovery).
    #[command(after_help = "\
Examples:
  seal unseal -i backup-key.txt db.sealed.yaml
  seal unseal -i key.txt clusters/prod/*.sealed.yaml -o json

Applies the same scope checks as the controller.")]
    Unseal(UnsealArgs),
    /// Check files for plaintext Secrets, malformed SealedSecrets and stale recipients (for CI).
    #[command(after_help = "\
Examples:
  seal check                 # the current directory, recursively
  seal check clusters/ apps/secret.yaml
  seal check --exclude 'legacy/' --format github

Folders are walked honouring .gitignore (inside a Git repo), .ignore and .sealantignore;
hidden folders are skipped. SOPS-encrypted documents, Secrets holding only ${VAR}
placeholders and Helm/Go templates are skipped, not reported (listed with --verbose).

Prints file:line: reason for each problem. Exit codes: 0 clean, 1 problems found,
2 usage or I/O error (a missing path, an unreadable file, an invalid .sealant.yaml).")]
    Check(CheckArgs),
    /// Generate an age identity file (age-keygen compatible) and print its recipient.
    #[command(after_help = "\
Examples:
  seal keygen -o break-glass.key     # keep it offline; commit only the printed age1… recipient")]
    Keygen(KeygenArgs),
    /// Print the age1… recipient(s) of an identity file.
    #[command(after_help = "\
Examples:
  seal recipient break-glass.key
  age-keygen -o k.txt && seal recipient k.txt")]
    Recipient(RecipientArgs),
    /// Print the age recipients the cluster seals to, one per line.
    #[command(after_help = "\
Examples:
  seal fetch-keys > prod.recipients       # then: seal -R prod.recipients secret.yaml
  seal fetch-keys --context prod-eu
  seal fetch-keys --controller-url http://localhost:8080   # via kubectl port-forward

Reads the ConfigMap sealant-recipients in the controller's namespace, which any
authenticated user may read; with --controller-url, asks the controller instead.")]
    FetchKeys(FetchKeysArgs),
    /// Ask the cluster's controller whether SealedSecrets open there, without applying them.
    #[command(after_help = "\
Examples:
  seal validate db.sealed.yaml
  kubectl get sealedsecret db -n prod -o yaml | seal validate --context prod
  seal validate --controller-url http://localhost:8080 clusters/prod/*.sealed.yaml

Prints one line per SealedSecret that opens; stops at the first that does not (exit 1).")]
    Validate(ValidateArgs),
    /// Have the controller re-seal SealedSecret files to its current keys, rewriting them in place.
    #[command(after_help = "\
Examples:
  seal reencrypt clusters/prod/                   # after a key rotation
  seal reencrypt --dry-run --exclude 'legacy/' .  # in CI: exit 1 if anything is on an old key
  seal reencrypt --controller-url http://localhost:8080 db.sealed.json

Only the lines of the items that change are rewritten: comments, key order and quoting stay.
Each file is written atomically, and only if all of its SealedSecrets were re-sealed; the
other files are still done, and the exit code is 1 if any failed. In a folder, files without
SealedSecrets are left alone. The values never leave the cluster in plaintext.

Exit codes: 0 done; 1 a file failed. With --dry-run: 0 nothing would change, 1 something
would, 2 an error.")]
    Reencrypt(ReencryptArgs),
    /// Carry Bitnami SealedSecrets over to Sealant offline, with a backup of Bitnami's keys.
    #[command(after_help = "\
Examples:
  kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml > bitnami-keys.yaml
  seal migrate --bitnami-keys bitnami-keys.yaml -w clusters/prod/     # in place, recipients from .sealant.yaml
  seal migrate --bitnami-keys key.pem -r age1… db.sealed.yaml > db.sealant.yaml

Keeps each object's name, namespace, scope (from Bitnami's scope annotations), labels,
annotations, and the template's metadata, type and immutability. Values are opened in memory
only. Folders are walked as `seal check` walks them; files without a Bitnami SealedSecret are
left alone. Reports on stderr which Bitnami key opened each object. If any object cannot be
carried over (e.g. spec.template.data), every problem is listed and nothing is written (exit 1).")]
    Migrate(MigrateArgs),
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  seal completions bash > /etc/bash_completion.d/seal
  seal completions zsh > \"${fpath[1]}/_seal\"")]
    Completions(CompletionsArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Name of the Secret.
    pub name: String,
    #[command(flatten)]
    pub items: ItemArgs,
    /// The Secret's type.
    #[arg(long = "type", value_name = "TYPE", env = "SEAL_TYPE")]
    pub type_: Option<String>,
    #[command(flatten)]
    pub sealing: SealingArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Seal a Secret with no items.
    #[arg(long, env = "SEAL_ALLOW_EMPTY")]
    pub allow_empty: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct RawArgs {
    /// Name of the SealedSecret the value goes into (needed by strict scope).
    #[arg(long, env = "SEAL_NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    pub sealing: SealingArgs,
    /// Seal an empty value.
    #[arg(long, env = "SEAL_ALLOW_EMPTY")]
    pub allow_empty: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The SealedSecret file to change in place.
    pub sealed_file: PathBuf,
    #[command(flatten)]
    pub items: ItemArgs,
    /// Remove an item. Repeatable; several may also be separated by commas (as in
    /// SEAL_REMOVE): an item key never holds one.
    #[arg(
        long = "remove",
        value_name = "KEY",
        env = "SEAL_REMOVE",
        value_delimiter = ','
    )]
    pub remove: Vec<String>,
    #[command(flatten)]
    pub to: SealToArgs,
    /// New values are sealed to the cluster's recipients when -r, -R and .sealant.yaml say nothing.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct UnsealArgs {
    /// An identity file (AGE-SECRET-KEY-1… lines, as from `seal keygen` or age-keygen).
    /// Repeatable; each value is one path, commas included.
    #[arg(
        short = 'i',
        long = "identity",
        value_name = "IDENTITY_FILE",
        env = "SEAL_IDENTITY",
        required = true
    )]
    pub identities: Vec<PathBuf>,
    /// SealedSecret files; stdin when none is given.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml, env = "SEAL_OUTPUT")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Files or directories (searched for .yaml, .yml and .json files); default the current directory.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The repo config to check recipients against (default: .sealant.yaml here or in a parent directory).
    #[arg(long, value_name = "FILE", env = "SEAL_CONFIG")]
    pub config: Option<PathBuf>,
    /// The recipient of a key known to be compromised: every value sealed to it is reported. Repeatable.
    #[arg(
        long = "compromised",
        value_name = "RECIPIENT",
        env = "SEAL_COMPROMISED"
    )]
    pub compromised: Vec<String>,
    /// Skip files and folders matching GLOB (gitignore syntax, relative to the current directory). Repeatable.
    #[arg(long, value_name = "GLOB", env = "SEAL_EXCLUDE")]
    pub exclude: Vec<String>,
    /// How to print problems: text (file:line: reason), json (one array), github (Actions annotations).
    #[arg(long, value_enum, default_value_t = CheckFormat::Text, env = "SEAL_CHECK_FORMAT")]
    pub format: CheckFormat,
    /// Also list what was skipped as not a leak (SOPS, placeholders, templates) and excluded, on stderr.
    #[arg(short, long, env = "SEAL_VERBOSE")]
    pub verbose: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckFormat {
    Text,
    Json,
    Github,
}

#[derive(Args, Debug)]
pub struct FetchKeysArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// SealedSecret files; stdin when none is given.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct ReencryptArgs {
    /// SealedSecret files to re-seal in place (YAML or JSON, one or more SealedSecrets each),
    /// or folders to search for them as `seal check` does (.gitignore and .sealantignore honoured).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Skip files and folders matching GLOB (gitignore syntax, relative to the current directory).
    /// Repeatable; check.exclude in .sealant.yaml applies too.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// The repo config whose check.exclude applies (default: .sealant.yaml here or in a parent directory).
    #[arg(long, value_name = "FILE", env = "SEAL_CONFIG")]
    pub config: Option<PathBuf>,
    /// List the items that would be re-sealed (file:line: SealedSecret 'name': items …) and write
    /// nothing. Exit 0 if nothing would change, 1 if something would, 2 on an error.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// A backup of Bitnami's keys: the YAML of `kubectl get secret -l
    /// sealedsecrets.bitnami.com/sealed-secrets-key -o yaml` (one Secret or a List), or PEM
    /// RSA private keys (PKCS#1 or PKCS#8). Repeatable; each value is one path.
    #[arg(
        long = "bitnami-keys",
        value_name = "BACKUP",
        env = "SEAL_BITNAMI_KEYS",
        required = true
    )]
    pub bitnami_keys: Vec<PathBuf>,
    /// Files or folders of Bitnami SealedSecrets (YAML stream, JSON or v1 List); stdin when none.
    #[arg(value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
    /// Rewrite each file in place (atomically, only if every object of the run was carried over)
    /// instead of printing to stdout.
    #[arg(short = 'w', long = "in-place", env = "SEAL_IN_PLACE")]
    pub in_place: bool,
    /// Output format on stdout (in place, each file keeps its own).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml, env = "SEAL_OUTPUT")]
    pub format: Format,
    #[command(flatten)]
    pub to: SealToArgs,
    /// Values are sealed to the cluster's recipients when -r, -R and .sealant.yaml say nothing.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the identity (created with mode 0600; an existing file is never overwritten).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        env = "SEAL_KEYGEN_OUTPUT",
        required = true
    )]
    pub output: PathBuf,
}

#[derive(Args, Debug)]
pub struct RecipientArgs {
    /// The identity file; `-` for stdin.
    #[arg(value_name = "FILE", env = "SEAL_IDENTITY")]
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum, env = "SEAL_SHELL")]
    pub shell: clap_complete::Shell,
}
