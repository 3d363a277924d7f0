-- ping: KEYS[1] any key base (unused); ARGV none. Returns 1.
-- The trivial script that benchmarks measure the EVALSHA round trip with.
return 1
