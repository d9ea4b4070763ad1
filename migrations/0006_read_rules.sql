-- Shared read rules as SQL views, so that every reader (the plugin, exports, the CLI, notebooks, SQL by hand)
-- picks the same run. Policy: only runs with status 'done' count; among them the one that finished last wins
-- (ties broken by the larger run id, so the choice is deterministic).

-- "Which result do I show for this subject?": per metric and subject, the newest done run, whatever its
-- parameters. A pair's subject is "sha_a:sha_b" in the planner's order; readers asking for an unordered pair
-- look both orders up (losslens.store.queries.latest_pair_run).
CREATE VIEW latest_runs AS
SELECT r.* FROM metric_runs r
WHERE r.status = 'done'
  AND r.id = (SELECT r2.id FROM metric_runs r2
              WHERE r2.metric = r.metric AND r2.subject = r.subject AND r2.status = 'done'
              ORDER BY r2.finished_at DESC, r2.id DESC LIMIT 1);

-- The same rule with the parameters held fixed: per metric, subject and params_hash, the newest done run
-- (a setting or experiment can have several runs with the same parameters, one per set of member checkpoints).
CREATE VIEW latest_runs_by_params AS
SELECT r.* FROM metric_runs r
WHERE r.status = 'done'
  AND r.id = (SELECT r2.id FROM metric_runs r2
              WHERE r2.metric = r.metric AND r2.subject = r.subject AND r2.params_hash = r.params_hash
                AND r2.status = 'done'
              ORDER BY r2.finished_at DESC, r2.id DESC LIMIT 1);

-- Indexes for the views' subqueries and for the readers' lookups by experiment, landscape, setting and pair.
CREATE INDEX metric_runs_latest ON metric_runs(metric, subject, status, finished_at);
CREATE INDEX metric_runs_experiment ON metric_runs(experiment_id, metric, status);
CREATE INDEX merge_tree_nodes_landscape ON merge_tree_nodes(landscape_id);
CREATE INDEX persistence_pairs_landscape ON persistence_pairs(landscape_id);
CREATE INDEX landscape_summaries_checkpoint ON landscape_summaries(checkpoint);
CREATE INDEX mds_coords_setting ON mds_coords(setting_id);
CREATE INDEX layer_cka_pair ON layer_cka(checkpoint_a, checkpoint_b);
CREATE INDEX curve_points_pair ON curve_points(checkpoint_a, checkpoint_b);
