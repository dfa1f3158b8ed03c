-- Widgets, owned by users, and an exact count of them kept by triggers.

CREATE TABLE widgets (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Stored lower-cased by the service (validated there), so UNIQUE is case-insensitive.
    name       text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    info_url   text        NOT NULL CHECK (length(info_url) <= 255),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deadline   timestamptz NOT NULL,
    owner_id   bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE
);

-- Deleting a user finds its widgets without a scan.
CREATE INDEX widgets_owner_id_idx ON widgets (owner_id);

-- The list endpoint reports the exact total on every page; count(*) over the whole table on
-- every request grows with the table, so the total is kept here, in the same transaction as
-- every insert and delete (statement-level triggers: a bulk load costs one update).
CREATE TABLE widget_count (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    total    bigint  NOT NULL CHECK (total >= 0)
);
INSERT INTO widget_count (total) SELECT count(*) FROM widgets;

-- A statement that changed nothing (an upsert that updated, a delete that found nothing)
-- leaves the row alone: writers then only queue on it when the count really changes.
CREATE FUNCTION widget_count_add_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    added bigint := (SELECT count(*) FROM inserted_rows);
BEGIN
    IF added > 0 THEN
        UPDATE widget_count SET total = total + added;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION widget_count_subtract_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    removed bigint := (SELECT count(*) FROM deleted_rows);
BEGIN
    IF removed > 0 THEN
        UPDATE widget_count SET total = total - removed;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION widget_count_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE widget_count SET total = 0;
    RETURN NULL;
END $$;

CREATE TRIGGER widgets_count_insert AFTER INSERT ON widgets
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION widget_count_add_inserted();

CREATE TRIGGER widgets_count_delete AFTER DELETE ON widgets
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION widget_count_subtract_deleted();

CREATE TRIGGER widgets_count_truncate AFTER TRUNCATE ON widgets
    FOR EACH STATEMENT EXECUTE FUNCTION widget_count_reset();
