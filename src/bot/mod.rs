//! The bot: jobs, workers, and the `serve` and `testdrive` commands that wire them to the
//! webhook server, the queue, the git cache and a forge.

pub mod fetch;
pub mod github;
pub mod gitlab;
pub mod review;
pub mod runner;
pub mod sandbox;
pub mod serve;
pub mod snapshot;
pub mod testdrive;
pub mod worker;
