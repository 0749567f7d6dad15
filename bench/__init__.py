"""The benchmark of the running stack: `./dev bench` (after `./dev up`), or `python -m bench`.

It measures, in one run, against whatever stack the `GRANTS_*` environment names:

- raw ceilings of the same servers: Temporal (no-op workflow, workflow with one no-op
  activity, a plain Python worker), Kafka (aiokafka produce -> consume at the project's message
  size) and Postgres (asyncpg single-row insert + commit);
- the pipeline: applications per second from submission (HTTP and Kafka) to "lifecycle
  workflow running and acknowledgement delivery recorded" with p50/p95/p99, at the maximum
  sustainable rate (closed loop) and at half of it (open loop); full lifecycles per second with
  every human step played by a bot;
- the cost curve: the same at several numbers of stored applications (seeded directly into
  the intake schema, external_ref `bench-seed-...`), with the p99 of the read endpoints;
- memory (RSS/PSS) and CPU of every process of the stack, and a py-spy profile of the
  services under load.

It prints a table and writes `bench/results/latest.json`. It asserts nothing: it reports.
"""
