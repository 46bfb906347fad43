-- One head can be the head of several pull requests (a branch proposed to two bases): remember
-- each pull request, not only the last one.
ALTER TABLE pr_heads DROP CONSTRAINT pr_heads_pkey;
ALTER TABLE pr_heads ADD PRIMARY KEY (forge, repo_id, head_sha, pr_number);
