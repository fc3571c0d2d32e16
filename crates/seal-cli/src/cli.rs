//! The command line: every flag also reads an environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sealant_core::Scope;

const SEAL_EXAMPLES: &str = "\
Examples:
  kubectl create secret generic db --from-literal=password=s3cr3t -n prod --dry-run=client -o yaml \\
    | seal -r age1… > db.sealed.yaml
  seal secret.yaml -w clusters/prod/db.sealed.yaml      # recipients from .sealant.yaml
  seal -R prod.recipients --scope namespace-wide secrets/*.yaml -o json

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
}

/// Who can open what is sealed, and how tightly it is bound.
#[derive(Args, Debug, Clone)]
pub struct SealingArgs {
    /// An age recipient (age1…) to seal to; repeat for several clusters or a break-glass key.
    #[arg(
        short = 'r',
        long = "recipient",
        value_name = "AGE1",
        env = "SEAL_RECIPIENTS",
        value_delimiter = ','
    )]
    pub recipients: Vec<String>,
    /// A file of recipients, one per line; `#` starts a comment. Repeatable.
    #[arg(
        short = 'R',
        long = "recipients-file",
        value_name = "FILE",
        env = "SEAL_RECIPIENTS_FILE",
        value_delimiter = ','
    )]
    pub recipients_files: Vec<PathBuf>,
    /// The repo config to take recipients from (default: .sealant.yaml here or in a parent directory).
    #[arg(long, value_name = "FILE", env = "SEAL_CONFIG")]
    pub config: Option<PathBuf>,
    /// What each value is bound to.
    #[arg(long, value_enum, default_value_t = ScopeArg::Strict, env = "SEAL_SCOPE")]
    pub scope: ScopeArg,
    /// Namespace for Secrets that name none (an explicit, different one is an error).
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

Prints file:line: reason for each problem; exits 1 if there is any.")]
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
    /// An item as KEY=VALUE. Repeatable.
    #[arg(
        long = "from-literal",
        value_name = "KEY=VALUE",
        env = "SEAL_FROM_LITERAL",
        value_delimiter = ','
    )]
    pub literals: Vec<String>,
    /// An item from a file, as [KEY=]PATH (KEY defaults to the file name). Repeatable.
    #[arg(
        long = "from-file",
        value_name = "[KEY=]PATH",
        env = "SEAL_FROM_FILE",
        value_delimiter = ','
    )]
    pub files: Vec<String>,
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
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The SealedSecret file to change in place.
    pub sealed_file: PathBuf,
    /// An item as KEY=VALUE. Repeatable.
    #[arg(
        long = "from-literal",
        value_name = "KEY=VALUE",
        env = "SEAL_FROM_LITERAL",
        value_delimiter = ','
    )]
    pub literals: Vec<String>,
    /// An item from a file, as [KEY=]PATH. Repeatable.
    #[arg(
        long = "from-file",
        value_name = "[KEY=]PATH",
        env = "SEAL_FROM_FILE",
        value_delimiter = ','
    )]
    pub files: Vec<String>,
    /// Remove an item. Repeatable.
    #[arg(
        long = "remove",
        value_name = "KEY",
        env = "SEAL_REMOVE",
        value_delimiter = ','
    )]
    pub remove: Vec<String>,
    /// Recipients for the new items (default: as in the repo config, else as the file's items).
    #[arg(
        short = 'r',
        long = "recipient",
        value_name = "AGE1",
        env = "SEAL_RECIPIENTS",
        value_delimiter = ','
    )]
    pub recipients: Vec<String>,
    /// A file of recipients for the new items. Repeatable.
    #[arg(
        short = 'R',
        long = "recipients-file",
        value_name = "FILE",
        env = "SEAL_RECIPIENTS_FILE",
        value_delimiter = ','
    )]
    pub recipients_files: Vec<PathBuf>,
    /// The repo config (default: .sealant.yaml here or in a parent directory).
    #[arg(long, value_name = "FILE", env = "SEAL_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UnsealArgs {
    /// An identity file (AGE-SECRET-KEY-1… lines, as from `seal keygen` or age-keygen). Repeatable.
    #[arg(
        short = 'i',
        long = "identity",
        value_name = "IDENTITY_FILE",
        env = "SEAL_IDENTITY",
        value_delimiter = ',',
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
