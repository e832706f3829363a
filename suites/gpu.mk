# The GPU suite, `make reproduce SUITE=gpu` (the paper's Fig. 12): the paper's GPU networks and
# batches on one CUDA device, device memory as the fast tier under a fixed budget, pinned host
# memory as the slow tier, synchronous and asynchronous plans, against CUDA unified memory with
# the same budget.
#
# Needs a CUDA GPU and cupy in .venv (not a default dependency):
#   uv pip install --python .venv "cupy-cuda12x[ctk]==14.2.0"     # cupy-cuda13x on CUDA 13
# and refuses in one line without them.
#
# Budget: GPU_FAST_LIMIT (default 10GB: the paper's 11 GB RTX 2080 Ti less the 1 GB its
# runtime took). Every plan is made for it (--fast-limit) and every unified run keeps only that
# much of its managed pool preferred on the device, the rest on the host (see
# tools/execute/README.md, "GPU"). Footprints (all-fast peak, graph only) at the batches below:
# vgg19 6/12 GB, resnet200 8/16/31 GB, inception_v4 10/21/42 GB, densenet264 8/17/33 GB. The
# unified runs allocate the whole footprint as managed memory, which must fit the free device
# memory (an 80 GB H100 fits every one; autotm-execute refuses before allocating otherwise), and
# --verify runs the network once all in device memory: on a smaller card, drop the largest
# batches or --verify (EXECUTE_ARGS=...). None of this has run on a GPU yet (benchmarks/gpu.md).

GPU_FAST_LIMIT ?= 10GB
GPU_PYTHON ?= .venv/bin/python

# Refuse early, once (sub-makes inherit the answer), on a machine without a GPU or cupy.
ifneq ($(AUTOTM_GPU_FOUND),yes)
AUTOTM_GPU_FOUND := $(shell $(GPU_PYTHON) -c "import cupy, sys; sys.exit(cupy.cuda.runtime.getDeviceCount() < 1)" >/dev/null 2>&1 && echo yes)
ifneq ($(AUTOTM_GPU_FOUND),yes)
$(error SUITE=gpu needs a CUDA GPU and cupy in .venv ('$(GPU_PYTHON) -c "import cupy"' found none); see suites/gpu.mk)
endif
endif
export AUTOTM_GPU_FOUND

# One "network" per (network, batch), so that each batch has its own folder and its own runs.
GPU_BATCHES_vgg19 := 64 128
GPU_BATCHES_resnet200 := 32 64 128
GPU_BATCHES_inception_v4 := 64 128 256
GPU_BATCHES_densenet264 := 32 64 128
GPU_NETWORKS := vgg19 resnet200 inception_v4 densenet264
NETWORKS := $(foreach n,$(GPU_NETWORKS),$(foreach b,$(GPU_BATCHES_$(n)),$(n)_b$(b)))
$(foreach n,$(GPU_NETWORKS),$(foreach b,$(GPU_BATCHES_$(n)),$(eval ZOO_$(n)_b$(b) := $(n))))
$(foreach n,$(GPU_NETWORKS),$(foreach b,$(GPU_BATCHES_$(n)),$(eval BATCH_$(n)_b$(b) := $(b))))

# Plans at one byte budget rather than ratios: runs/synchronous.json, runs/asynchronous.json,
# and all-fast (the whole footprint in device memory, where the card holds it) as a reference.
FORMULATIONS :=
BASELINES := all-fast synchronous asynchronous
$(foreach n,$(NETWORKS),$(eval RATIOS_$(n) :=))
$(foreach n,$(NETWORKS),$(eval TWO_LM_RATIOS_$(n) :=))

ZOO_ARGS :=
PROFILE_ARGS := --device cuda --quiet
OPTIMIZE_ARGS := --fast-limit $(GPU_FAST_LIMIT) --time-limit 300
EXECUTE_ARGS := --device cuda --iterations 5 --warmup 1 --verify
REPORT_ARGS :=

# The unified-memory baseline of each network: runs/unified.json at the same budget. (An
# explicit rule, so the pattern rule for plan runs does not claim it.) RUN_execute is expanded
# when the recipe runs: reproduce.mk defines it after including this file.
define gpu_unified_rules
$(OUT)/$(1)/runs/unified.json: $(OUT)/$(1)/train.onnx
	@mkdir -p $$(@D)
	$$(RUN_execute) $$< --mode unified --fast-memory $(GPU_FAST_LIMIT) $(EXECUTE_ARGS) --quiet -o $$@

RUNS += $(OUT)/$(1)/runs/unified.json
endef
$(foreach net,$(NETWORKS),$(eval $(call gpu_unified_rules,$(net))))
