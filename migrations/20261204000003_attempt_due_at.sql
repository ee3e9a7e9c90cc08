-- When each attempt was due: the delivery's due time as the claim started it. From it
-- to the attempt's answer is the latency Switchyard and the receiver are answerable
-- for; time spent held behind a paused or disabled destination, waiting for a rate
-- slot, or between retries is not in it. Attempts made before this column have none.
ALTER TABLE attempts ADD COLUMN due_at timestamptz;
