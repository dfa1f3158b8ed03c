-- Strong ETags for widgets (docs/API.md §8.3): a random value, replaced by every update.
--
-- Random rather than a counter: a widget deleted and created again under the same name
-- must not get back an ETag that a client still holds for the old one.
ALTER TABLE widgets ADD COLUMN etag uuid NOT NULL DEFAULT gen_random_uuid();
