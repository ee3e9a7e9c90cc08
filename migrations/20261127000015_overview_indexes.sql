-- The overview counts a team's deliveries and refused requests over the last day or week.
CREATE INDEX deliveries_team_created ON deliveries (team_id, created_at);
CREATE INDEX source_rejections_team_received ON source_rejections (team_id, received_at);
