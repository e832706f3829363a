# The Inception v4 case study (Fig. 10): batch 1024 over the paper's fast-memory shares
# 1/2 .. 1/10, 1/20, 1/40, 1/60, 1/80, 1/100, 2/3 and 3/4 (plus 1 and 0 as all-fast and
# all-slow), for numa, static and synchronous placements.
#
# As for SUITE=conventional: on a machine without the memory for it,
#   make reproduce SUITE=inception SIMULATE=yes MEASURE_BATCH=8

NETWORKS := inception_v4
ZOO_inception_v4 := inception_v4
BATCH_inception_v4 := 1024

FORMULATIONS := numa static synchronous
# slow:fast for a fast share of 1/k is (k-1):1; 2/3 is 1:2 and 3/4 is 1:3.
RATIOS_inception_v4 := 1x1 2x1 3x1 4x1 5x1 6x1 7x1 8x1 9x1 19x1 39x1 59x1 79x1 99x1 1x2 1x3
BASELINES := all-fast all-slow
TWO_LM_RATIOS_inception_v4 :=

SIMULATE ?=
MEASURE_BATCH ?=
PROFILE_ARGS ?=
OPTIMIZE_ARGS ?= --time-limit 300
EXECUTE_ARGS ?= --iterations 3 --warmup 1 $(if $(filter yes,$(SIMULATE)),,--verify)
TWO_LM_ARGS ?= --iterations 3 --warmup 1
REPORT_ARGS ?= --case-study inception_v4
