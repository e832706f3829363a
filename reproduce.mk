# `make reproduce [SUITE=default|conventional|large|inception|gpu] [RUNNER=local|docker]`
#
# The paper's workflow as Make rules over files, one tool invocation per rule, so a rerun redoes
# only what changed and `make -j` runs independent steps in parallel. Every recipe line is a
# command a user could type (with RUN_T standing for autotm-T, or its `docker run` line).
#
#   model.onnx      autotm-graph zoo NET --batch B -o model.onnx
#   train.onnx      autotm-graph train model.onnx --batch B -o train.onnx
#   profile/        autotm-profile train.onnx -o profile
#   plans/F@R.json  autotm-optimize profile --formulation F --ratio R -o plans/F@R.json
#   runs/F@R.json   autotm-execute train.onnx --plan plans/F@R.json --verify -o runs/F@R.json
#   runs/2lm@R.json autotm-execute train.onnx --mode 2lm --fast-memory LIMIT -o runs/2lm@R.json
#   report/         autotm-report runs... --plans ... --profiles ... -o report
#
# A suite file (suites/SUITE.mk) names the networks, batches, ratios and the options of each
# stage. Ratios are written with x in file names (4x1 is the paper's 4:1), since Make reserves ':'.

SUITE ?= default
RUNNER ?= local
OUT ?= out/$(SUITE)
# One BLAS thread per tool: OpenBLAS's threads spin-wait for each other and stall for hundreds
# of milliseconds when anything else holds a core, which distorts profiles and runs alike.
# Profile and execute must agree on it (it is part of the profile cache's identity).
export OPENBLAS_NUM_THREADS ?= 1

include suites/$(SUITE).mk
-include containers/containers.mk

# Local runner defaults, when containers.mk does not define them.
RUN_graph ?= .venv/bin/autotm-graph
RUN_profile ?= .venv/bin/autotm-profile
RUN_optimize ?= .venv/bin/autotm-optimize
RUN_execute ?= .venv/bin/autotm-execute
RUN_report ?= .venv/bin/autotm-report

ratio_of = $(subst x,:,$(1))
# SIMULATE=yes: predict runs from the profile (autotm-execute --simulate) instead of running them,
# for networks this machine cannot hold; every record and figure then says "simulated".
simulate_args = $(if $(filter yes,$(SIMULATE)),--simulate --profile $(OUT)/$(1)/profile)
simulate_deps = $(if $(filter yes,$(SIMULATE)),$(OUT)/$(1)/profile/profile.json)
# MEASURE_BATCH=B: time kernels at batch B and scale them to the network's batch.
measure_args = $(if $(MEASURE_BATCH),--measure-batch $(MEASURE_BATCH))
# The fast limit for 2LM runs at ratio R is the one the optimizer derived for the same ratio;
# the static plan records it, so the 2LM cache has exactly the budget AutoTM had.
fast_limit_of = $$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['fast_limit_bytes'])" $(1))

# network_rules(NET): every file of one network.
define network_rules
$(OUT)/$(1)/model.onnx:
	@mkdir -p $$(@D)
	$(RUN_graph) zoo $(ZOO_$(1)) --batch $(BATCH_$(1)) $(ZOO_ARGS) -o $$@

$(OUT)/$(1)/train.onnx: $(OUT)/$(1)/model.onnx
	$(RUN_graph) train $$< --batch $(BATCH_$(1)) -o $$@

$(OUT)/$(1)/profile/profile.json: $(OUT)/$(1)/train.onnx
	$(RUN_profile) $$< $(call measure_args) $(PROFILE_ARGS) -o $$(@D)

$(OUT)/$(1)/plans/%.json: $(OUT)/$(1)/profile/profile.json
	@mkdir -p $$(@D)
	$(RUN_optimize) $$(<D) --formulation $$(firstword $$(subst @, ,$$*)) \
	  $$(if $$(findstring @,$$*),--ratio $$(call ratio_of,$$(lastword $$(subst @, ,$$*)))) $(OPTIMIZE_ARGS) --quiet -o $$@

$(OUT)/$(1)/runs/2lm@%.json: $(OUT)/$(1)/train.onnx $(OUT)/$(1)/plans/static@%.json $(call simulate_deps,$(1))
	@mkdir -p $$(@D)
	$(RUN_execute) $$< --mode 2lm --fast-memory $$(call fast_limit_of,$(OUT)/$(1)/plans/static@$$*.json) $(call simulate_args,$(1)) $(TWO_LM_ARGS) --quiet -o $$@

$(OUT)/$(1)/runs/2lm.json: $(OUT)/$(1)/train.onnx $(OUT)/$(1)/plans/static.json $(call simulate_deps,$(1))
	@mkdir -p $$(@D)
	$(RUN_execute) $$< --mode 2lm --fast-memory $$(call fast_limit_of,$(OUT)/$(1)/plans/static.json) $(call simulate_args,$(1)) $(TWO_LM_ARGS) --quiet -o $$@

$(OUT)/$(1)/runs/%.json: $(OUT)/$(1)/train.onnx $(OUT)/$(1)/plans/%.json $(call simulate_deps,$(1))
	@mkdir -p $$(@D)
	$(RUN_execute) $$< --plan $(OUT)/$(1)/plans/$$*.json $(call simulate_args,$(1)) $(EXECUTE_ARGS) --quiet -o $$@

RUNS += $(foreach f,$(FORMULATIONS),$(foreach r,$(RATIOS_$(1)),$(OUT)/$(1)/runs/$(f)@$(r).json)) \
        $(foreach b,$(BASELINES),$(OUT)/$(1)/runs/$(b).json) \
        $(foreach r,$(TWO_LM_RATIOS_$(1)),$(OUT)/$(1)/runs/2lm@$(r).json) \
        $(if $(filter yes,$(TWO_LM_AT_LIMIT)),$(OUT)/$(1)/runs/2lm.json)
PROFILES += $(OUT)/$(1)/profile/profile.json
endef

$(foreach net,$(NETWORKS),$(eval $(call network_rules,$(net))))

# Plans, profiles and graphs are results to keep and inspect, not intermediates to delete.
.SECONDARY:

$(OUT)/report/index.html: $(RUNS)
	$(RUN_report) $(RUNS) --plans $(OUT)/*/plans/*.json --profiles $(patsubst %/profile.json,%,$(PROFILES)) $(REPORT_ARGS) -o $(@D)

.PHONY: reproduce
reproduce: $(VENV_STAMP)
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory -f Makefile $(OUT)/report/index.html SUITE=$(SUITE) RUNNER=$(RUNNER); \
	echo "reproduce: suite $(SUITE) done in $$(( $$(date +%s) - start )) s; report: $(OUT)/report/index.html"
