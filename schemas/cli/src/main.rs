//! `anineplus-schemas`: registers and checks the topics' value schemas in the registry.
//!
//! `make up` runs `anineplus-schemas register` once the registry is up, so every
//! `<topic>-value` subject exists before any service produces. A schema the registry
//! rejects (incompatible with the registered versions) stops `make up` with the registry's
//! reason.

use std::process::ExitCode;

use anineplus_schemas::Topic;
use anineplus_schemas::registry_client::{RegistryClient, RegistryError};
use clap::{Parser, Subcommand};

/// Register and check the Avro value schemas of the AnineePlus topics.
#[derive(Parser)]
#[command(
    version,
    about = "Register and check the Avro value schemas of the AnineePlus topics in the schema registry"
)]
struct Cli {
    #[command(flatten)]
    registry: anineplus_args::RegistryArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register every topic's current schema under `<topic>-value` (idempotent: an equal
    /// schema keeps its id and version). Fails, naming the subject and the registry's reason,
    /// when a schema is refused.
    Register,
    /// Ask the registry whether every current schema is compatible with the subject's
    /// registered versions, without registering anything.
    Check,
    /// Print the topics, their subjects and event types.
    List,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Log lines (the runtime's warnings, say) go to stderr; stdout is the command's result.
    if let Err(e) = anineplus_telemetry::init_logging("warn", anineplus_telemetry::Output::Stderr) {
        eprintln!("error: {e}");
    }
    let cli = Cli::parse();
    let client = RegistryClient::new(&cli.registry.registry_url);
    match cli.command {
        Command::List => {
            for topic in Topic::ALL {
                println!(
                    "{:<13} {:<19} {}",
                    topic.name(),
                    topic.subject(),
                    topic.event_types().join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Command::Register => {
            let mut failed = false;
            for topic in Topic::ALL {
                match client.register(&topic.subject(), topic.schema()).await {
                    Ok(id) => println!("registered {:<19} schema id {id}", topic.subject()),
                    Err(e) => {
                        failed = true;
                        eprintln!("error: {} was not registered: {e}", topic.subject());
                        if matches!(e, RegistryError::Unavailable { .. }) {
                            break;
                        }
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Check => {
            let mut failed = false;
            for topic in Topic::ALL {
                match client
                    .check_compatibility(&topic.subject(), topic.schema())
                    .await
                {
                    Ok(messages) if messages.is_empty() => {
                        println!("compatible   {}", topic.subject())
                    }
                    Ok(messages) => {
                        failed = true;
                        println!("INCOMPATIBLE {}: {}", topic.subject(), messages.join("; "));
                    }
                    Err(RegistryError::NotFound { .. }) => {
                        println!("new subject  {}", topic.subject())
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("error: {}: {e}", topic.subject());
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
