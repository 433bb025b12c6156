use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pygrate::cli::Cli::parse();
    match pygrate::app::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
        }
    }
}
