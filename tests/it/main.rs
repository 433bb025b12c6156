//! Integration tests: the real binary and the library against real databases.

mod support;

mod adapters;
mod cli;
mod crash;
mod embedding;
mod integrity;
mod lanes;
mod lint;
mod servers;
mod sqlite;
