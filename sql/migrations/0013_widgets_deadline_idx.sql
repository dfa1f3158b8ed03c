-- The total of an offset page filtered by deadline (docs/API.md §8.7) counts every widget in
-- its range. widgets_deadline_name_idx (0011) holds each name too: counting most of a million
-- widgets through it costs the planner more than a parallel sequential scan of the table,
-- which reads all of them. An index of the deadlines alone is a fraction of that size, since
-- deadlines are days (23:59:59.999999 UTC) and B-tree deduplication keeps each day's widgets
-- in one entry's posting list: the count becomes an index-only range scan of it, about a
-- third of the scan's time for 78 % of a million widgets (a range of a few days reads a few
-- pages). Sorted pages keep reading the (deadline, name) index, which gives their order.
CREATE INDEX widgets_deadline_idx ON widgets (deadline);
