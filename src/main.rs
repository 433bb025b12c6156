use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pygrate::cli::Cli::parse();
    match pygrate::app::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            // A closed stderr must not turn an error into a panic.
            let _ = writeln!(std::io::stderr().lock(), "error: {error}");
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
        }
    }
}
