//! Runs `exact_sum` / `exact_avg` on a real Ballista cluster on 127.0.0.1 (one
//! scheduler and two executors, each its own OS process) and checks the results
//! bit for bit against a single-process DataFusion session.
//!
//! The same binary plays every role:
//!
//! ```text
//! mavg-ballista                                  # driver: starts the cluster, runs, compares
//! mavg-ballista scheduler --port P
//! mavg-ballista executor --id ID --port P --grpc-port G --scheduler-port S --work-dir D
//! ```

mod compare;
mod data;
mod driver;
mod roles;

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        None => driver::run(),
        Some("scheduler") => parse_flags(&args[1..]).and_then(|f| roles::run_scheduler(&f)),
        Some("executor") => parse_flags(&args[1..]).and_then(|f| roles::run_executor(&f)),
        Some("-h" | "--help") => {
            println!("usage: mavg-ballista [scheduler|executor --flag value ...]");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(anyhow::anyhow!("unknown role {other:?}")),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `--name value` pairs of a role's command line.
pub struct Flags(HashMap<String, String>);

impl Flags {
    pub fn get(&self, name: &str) -> Result<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .with_context(|| format!("missing --{name}"))
    }

    pub fn port(&self, name: &str) -> Result<u16> {
        let v = self.get(name)?;
        v.parse()
            .with_context(|| format!("--{name} {v:?} is not a port"))
    }
}

fn parse_flags(args: &[String]) -> Result<Flags> {
    let mut map = HashMap::new();
    let mut it = args.iter();
    while let Some(name) = it.next() {
        let Some(name) = name.strip_prefix("--") else {
            bail!("expected --flag, got {name:?}");
        };
        let value = it
            .next()
            .with_context(|| format!("--{name} needs a value"))?;
        map.insert(name.to_string(), value.clone());
    }
    Ok(Flags(map))
}
