//! `seal`: encrypt Kubernetes Secrets into SealedSecrets that are safe to commit.

mod cli;
mod cluster;
mod commands;
mod failure;
mod files;
mod recipients;
mod walk;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use failure::Result;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("seal: {failure}");
            ExitCode::from(failure.exit_code)
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        None => commands::seal::run(cli)?,
        Some(Command::Create(args)) => commands::seal::create(args)?,
        Some(Command::Raw(args)) => commands::seal::raw(args)?,
        Some(Command::Merge(args)) => commands::merge::run(args)?,
        Some(Command::Unseal(args)) => commands::unseal::run(args)?,
        Some(Command::Check(args)) => {
            let problems = commands::check::run(args)?;
            return Ok(if problems == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Some(Command::FetchKeys(args)) => commands::fetch_keys::run(args)?,
        Some(Command::Validate(args)) => commands::validate::run(args)?,
        Some(Command::Reencrypt(args)) => {
            if commands::reencrypt::run(args)? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Some(Command::Migrate(args)) => commands::migrate::run(args)?,
        Some(Command::Keygen(args)) => commands::keys::keygen(args)?,
        Some(Command::Recipient(args)) => commands::keys::recipient(args)?,
        Some(Command::Completions(args)) => commands::keys::completions(args)?,
    }
    Ok(ExitCode::SUCCESS)
}
