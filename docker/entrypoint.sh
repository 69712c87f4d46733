#!/bin/sh
# Entry point of the loader image: load the documents of $SOURCE into the index, one shard of them.
#
#   python -m loader load "$SOURCE" --shard INDEX/COUNT [extra arguments]
#
# INDEX/COUNT come from AWS Batch: in each child of an array job of size N, Batch sets
# AWS_BATCH_JOB_ARRAY_INDEX (0..N-1) and AWS_BATCH_JOB_ARRAY_SIZE (N), so `aws batch submit-job
# --array-properties size=N` is all it takes for N shards that together load everything.
# SHARD_INDEX/SHARD_COUNT (container overrides) run one shard as a single, non-array job, e.g. to
# re-run shard 3 of 8; in an array job they must agree with what Batch set. SHARD_OFFSET/SHARD_COUNT
# split one set of shards over several array jobs (e.g. one per index, with its own LOADER_INDEX):
# child i runs shard SHARD_OFFSET+i of SHARD_COUNT. Without any of them, the whole corpus is loaded
# by this one job. Extra arguments (the job's command) are passed to the loader; every
# loader option can also be set with its LOADER_* environment variable.
set -eu

fail() {
    echo "entrypoint: $*" >&2
    exit 2  # a usage error: the job definition does not retry it
}

is_count() {
    case "$1" in
        '' | *[!0-9]*) return 1 ;;
        *) [ "$1" -ge 1 ] 2>/dev/null ;;
    esac
}

is_index() {
    case "$1" in
        '' | *[!0-9]*) return 1 ;;
        *) return 0 ;;
    esac
}

[ -n "${SOURCE:-}" ] || fail "SOURCE is not set: the s3://bucket/prefix/ (or folder) to load"

index="${AWS_BATCH_JOB_ARRAY_INDEX:-}"
count="${AWS_BATCH_JOB_ARRAY_SIZE:-}"
if [ -n "${SHARD_OFFSET:-}" ]; then
    # Several array jobs share one set of shards (e.g. one array job per index): child i of this array
    # runs shard SHARD_OFFSET+i of SHARD_COUNT in all.
    [ -n "$index" ] || fail "SHARD_OFFSET applies to array jobs; for one shard set SHARD_INDEX and SHARD_COUNT"
    [ -z "${SHARD_INDEX:-}" ] || fail "set SHARD_OFFSET or SHARD_INDEX, not both"
    [ -n "${SHARD_COUNT:-}" ] || fail "SHARD_OFFSET needs SHARD_COUNT, the number of shards of all the array jobs"
    is_index "$SHARD_OFFSET" || fail "SHARD_OFFSET must be a whole number, not '$SHARD_OFFSET'"
    is_count "$SHARD_COUNT" || fail "the shard count must be a whole number of at least 1, not '$SHARD_COUNT'"
    [ $((SHARD_OFFSET + count)) -le "$SHARD_COUNT" ] \
        || fail "shards $SHARD_OFFSET..$((SHARD_OFFSET + count - 1)) are out of range for SHARD_COUNT=$SHARD_COUNT"
    index=$((SHARD_OFFSET + index))
    count="$SHARD_COUNT"
else
    if [ -n "${SHARD_INDEX:-}" ]; then
        [ -z "$index" ] || [ "$index" = "$SHARD_INDEX" ] \
            || fail "SHARD_INDEX=$SHARD_INDEX disagrees with AWS_BATCH_JOB_ARRAY_INDEX=$index"
        index="$SHARD_INDEX"
    fi
    if [ -n "${SHARD_COUNT:-}" ]; then
        [ -z "$count" ] || [ "$count" = "$SHARD_COUNT" ] \
            || fail "SHARD_COUNT=$SHARD_COUNT disagrees with the array size AWS_BATCH_JOB_ARRAY_SIZE=$count"
        count="$SHARD_COUNT"
    fi
fi

if [ -z "$index" ] && [ -z "$count" ]; then
    echo "entrypoint: loading all of $SOURCE (no shard)" >&2
    exec python -m loader load "$SOURCE" "$@"
fi
[ -n "$index" ] || fail "a shard count ($count) without a shard index: set SHARD_INDEX, or submit an array job"
[ -n "$count" ] || fail "a shard index ($index) without a shard count: set SHARD_COUNT"
is_count "$count" || fail "the shard count must be a whole number of at least 1, not '$count'"
is_index "$index" || fail "the shard index must be a whole number, not '$index'"
[ "$index" -lt "$count" ] || fail "shard index $index is out of range for $count shards (0..$((count - 1)))"

echo "entrypoint: loading shard $index/$count of $SOURCE" >&2
exec python -m loader load "$SOURCE" --shard "$index/$count" "$@"
