//! Whose review a forge write belongs to, so a client can share an installation's write budget
//! fairly between pull requests (see `WriteLimits::review_share_percent` of the GitHub client).
//!
//! The worker runs each job inside [`for_review`]; the client reads [`current_review`] when it
//! paces a content-creating write. A task-local rather than an argument on every call: the
//! publishing code stays forge-neutral about budgets, and a write made outside any job (a
//! dry run, a test) is simply not attributed to a review.

use std::future::Future;

tokio::task_local! {
    static REVIEW: String;
}

/// Runs `work` with its forge writes counted as `review`'s (e.g. `github:4242:7`: one key per
/// pull request, so its successive jobs share one share).
pub async fn for_review<F: Future>(review: String, work: F) -> F::Output {
    REVIEW.scope(review, work).await
}

/// The review the current task's writes belong to, if any.
pub fn current_review() -> Option<String> {
    REVIEW.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_review_is_known_inside_its_scope_only() {
        assert_eq!(current_review(), None);
        let inside = for_review("github:1:7".into(), async { current_review() }).await;
        assert_eq!(inside.as_deref(), Some("github:1:7"));
        assert_eq!(current_review(), None);
    }
}
