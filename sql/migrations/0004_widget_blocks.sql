-- Exact totals and deep pages without walking the whole table.
--
-- The widget list shows the exact total on every page, and a page deep in a large collection
-- (`?page=9000`) would otherwise walk every id before it (OFFSET). Widgets are counted per
-- block of 4096 consecutive ids instead: the total is the sum of a few block rows, and a deep
-- page starts from the block that holds its first row, skipping fewer than 4096 ids.
-- (100,000 widgets make 25 blocks.) Ids only grow, so new widgets always land in the last block.
--
-- The counts are kept by statement-level triggers in the same transaction as every insert,
-- delete and truncate, so any one statement sees counts that match the rows it sees. This
-- replaces the single-row widget_count of 0002.

CREATE TABLE widget_blocks (
    first_id bigint PRIMARY KEY CHECK (first_id >= 0 AND first_id % 4096 = 0),
    widgets  bigint NOT NULL CHECK (widgets >= 0)  -- 0 only inside a delete's trigger
);

-- Writers wait (readers do not) until this file commits: a widget written between the count
-- below and the trigger swap would otherwise be counted by neither.
LOCK TABLE widgets IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO widget_blocks (first_id, widgets)
SELECT id - id % 4096, count(*) FROM widgets GROUP BY 1;

DROP TRIGGER widgets_count_insert ON widgets;
DROP TRIGGER widgets_count_delete ON widgets;
DROP TRIGGER widgets_count_truncate ON widgets;
DROP FUNCTION widget_count_add_inserted();
DROP FUNCTION widget_count_subtract_deleted();
DROP FUNCTION widget_count_reset();
DROP TABLE widget_count;

-- A statement that inserted or deleted nothing (an upsert that updated, a delete that found
-- nothing) touches no block: writers only queue on a block row when its count changes.
-- Block rows are locked in first_id order, so two statements that touch several blocks (a
-- bulk load, deleting a user with many widgets) cannot deadlock on them.
CREATE FUNCTION widget_blocks_add_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO widget_blocks AS b (first_id, widgets)
    SELECT id - id % 4096, count(*) FROM inserted_rows GROUP BY 1 ORDER BY 1
    ON CONFLICT (first_id) DO UPDATE SET widgets = b.widgets + EXCLUDED.widgets;
    RETURN NULL;
END $$;

-- Two statements, not one: each sees the other writers' committed counts, so concurrent
-- deletes from one block always add up, and a block whose last widget went is then removed
-- (the blocks stay as few as the live id ranges).
CREATE FUNCTION widget_blocks_subtract_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM widget_blocks
    WHERE first_id IN (SELECT id - id % 4096 FROM deleted_rows)
    ORDER BY first_id
    FOR UPDATE;

    UPDATE widget_blocks b SET widgets = b.widgets - r.widgets
    FROM (SELECT id - id % 4096 AS first_id, count(*) AS widgets
          FROM deleted_rows GROUP BY 1) r
    WHERE b.first_id = r.first_id;

    DELETE FROM widget_blocks
    WHERE widgets = 0 AND first_id IN (SELECT id - id % 4096 FROM deleted_rows);
    RETURN NULL;
END $$;

CREATE FUNCTION widget_blocks_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM widget_blocks;
    RETURN NULL;
END $$;

CREATE TRIGGER widgets_blocks_insert AFTER INSERT ON widgets
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION widget_blocks_add_inserted();

CREATE TRIGGER widgets_blocks_delete AFTER DELETE ON widgets
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION widget_blocks_subtract_deleted();

CREATE TRIGGER widgets_blocks_truncate AFTER TRUNCATE ON widgets
    FOR EACH STATEMENT EXECUTE FUNCTION widget_blocks_reset();
