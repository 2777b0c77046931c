//! The `train`, `eval` and `degrade` commands without the rest of the `clearair` binary, for
//! running them before the binary wires them in:
//!
//! ```text
//! cargo run --release -p clearair-train --example train -- train restorer --iterations 100
//! ```

use clap::{Parser, Subcommand};
use clearair_train::{DegradeArgs, EvalArgs, TrainArgs};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the encoder or the restorer, or time them.
    Train(TrainArgs),
    /// Evaluate on the held-out photos.
    Eval(EvalArgs),
    /// Degrade a photo.
    Degrade(DegradeArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Train(args) => clearair_train::train(args),
        Command::Eval(args) => clearair_train::eval(args),
        Command::Degrade(args) => clearair_train::degrade(args),
    }
}
