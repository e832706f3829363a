# The embedded default suite: reduced versions of the paper's four networks (same block
# patterns, fewer channels and blocks, 32x32 images), small enough that the whole workflow runs
# on a laptop with the emulated slow tier (device model optane-dc-2019) in minutes.

NETWORKS := vgg19 resnet200 inception_v4 densenet264
$(foreach n,$(NETWORKS),$(eval ZOO_$(n) := $(n)-mini))
$(foreach n,$(NETWORKS),$(eval BATCH_$(n) := 16))

# Fig. 7 and 9: the paper's PMM:DRAM ratios for every network.
FORMULATIONS := numa static synchronous
$(foreach n,$(NETWORKS),$(eval RATIOS_$(n) := 8x1 4x1 1x1))
BASELINES := all-fast all-slow
# Fig. 8: 2LM (DRAM as a cache of the slow tier) at the budget of the 4:1 plans.
$(foreach n,$(NETWORKS),$(eval TWO_LM_RATIOS_$(n) := 4x1))
# Fig. 10: the Inception case study over more fast-memory shares (1/2 .. 1/10, 2/3, 3/4).
RATIOS_inception_v4 := 8x1 4x1 1x1 2x1 3x1 5x1 7x1 9x1 1x2 1x3

ZOO_ARGS :=
PROFILE_ARGS := --quiet
OPTIMIZE_ARGS := --time-limit 30
EXECUTE_ARGS := --iterations 3 --warmup 1 --verify
TWO_LM_ARGS := --iterations 3 --warmup 1
REPORT_ARGS :=
