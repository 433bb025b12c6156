//! pygrate: phased, checksummed SQL migrations for zero-downtime deployments.
//!
//! The modules follow the flow of a command: [`project`] finds the files,
//! [`parser`] splits them into sections and [`splitter`] into statements,
//! [`planner`] turns files + state into steps, [`executor`] runs them through
//! a [`backend::Backend`]. A service embeds it through [`migrator::Migrator`].

pub mod app;
pub mod backend;
pub mod checksum;
pub mod cli;
pub mod config;
pub mod dialect;
pub mod error;
pub mod executor;
pub mod integrity;
pub mod interrupt;
pub mod lexer;
pub mod lint;
pub mod migrator;
pub mod parser;
pub mod phase;
pub mod planner;
pub mod project;
pub mod report;
pub mod splitter;
pub mod state;
pub mod text;
