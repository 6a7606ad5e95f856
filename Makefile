.PHONY: run test setup clean
run:    ## set up and run the main job (milestones 1-5 on the embedded default)
	bash scripts/run.sh $(ARGS)
test:   ## set up and run the whole test suite
	bash scripts/test.sh $(ARGS)
setup:
	bash scripts/setup.sh
clean:
	rm -rf results reports .pytest_cache
