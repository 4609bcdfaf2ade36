# Tests of `ctrain search`, `ctrain predict` and transfer learning
# (--init-from with --freeze, --reset-head); docs/tooling.md describes them.
# Included by tools/CMakeLists.txt where ctrain_cli_test and TD are defined.

set(SD ${CMAKE_CURRENT_BINARY_DIR}/searchcfg)
file(WRITE ${SD}/unknown.json "{\"lr\": [0.1], \"bogus\": [1]}\n")
file(WRITE ${SD}/empty.json "{\"lr\": []}\n")
file(WRITE ${SD}/upside_down.json "{\"lr\": {\"min\": 0.1, \"max\": 0.01, \"scale\": \"log\"}}\n")
file(WRITE ${SD}/log_zero.json "{\"lr\": {\"min\": 0, \"max\": 0.1, \"scale\": \"log\"}}\n")
file(WRITE ${SD}/bad_value.json "{\"dropout\": [0.1, 1.5]}\n")
file(WRITE ${SD}/owned.json "{\"seed\": [1, 2]}\n")
file(WRITE ${SD}/good.json "{\"lr\": [0.01]}\n")
file(WRITE ${SD}/not_object.json "[1, 2]\n")

# Bad spaces and flags: one line naming the key or flag, exit 2.
ctrain_cli_test(cli_search_unknown_key "search --space ${SD}/unknown.json --out ${SD}/never --val-split 0.1" 2
  STDERR "^ctrain: search: 'bogus' in .*unknown.json: unknown option")
ctrain_cli_test(cli_search_empty_list "search --space ${SD}/empty.json --out ${SD}/never --val-split 0.1" 2
  STDERR "^ctrain: search: 'lr' in .*empty.json: empty list")
ctrain_cli_test(cli_search_upside_down "search --space ${SD}/upside_down.json --out ${SD}/never --val-split 0.1" 2
  STDERR "^ctrain: search: 'lr' in .*upside_down.json: bad range: min 0.1 is above max 0.01")
ctrain_cli_test(cli_search_log_zero "search --space ${SD}/log_zero.json --out ${SD}/never --val-split 0.1" 2
  STDERR "^ctrain: search: 'lr' in .*log_zero.json: bad range: a log scale needs min > 0")
ctrain_cli_test(cli_search_bad_value "search --space ${SD}/bad_value.json --out ${SD}/never --val-split 0.1" 2
  STDERR "^ctrain: search: 'dropout' in .*bad_value.json wants a number in \\[0, 1\\), not '1.5'")
ctrain_cli_test(cli_search_owned_key "search --space ${SD}/owned.json --out ${SD}/never --val-split 0.1" 2
  STDERR "^ctrain: search: 'seed' in .*owned.json: set by the search for every trial")
ctrain_cli_test(cli_search_not_object "search --space ${SD}/not_object.json --out ${SD}/never --val-split 0.1" 2
  STDERR "^ctrain: search: .*not_object.json: not a JSON object")
ctrain_cli_test(cli_search_no_val "search --space ${SD}/good.json --out ${SD}/never" 2
  STDERR "^ctrain: search: --objective val_loss needs a validation set")
ctrain_cli_test(cli_search_both "search --space ${SD}/good.json --out ${SD}/never --val-split 0.1 --lr 0.1" 2
  STDERR "^ctrain: search: --lr is given and also in the space")
ctrain_cli_test(cli_search_bad_train_flag "search --space ${SD}/good.json --out ${SD}/never --val-split 0.1 --epochs x" 2
  STDERR "^ctrain: search: --epochs wants an integer")
ctrain_cli_test(cli_search_unwritable "search --space ${SD}/good.json --out /proc/ctrain-search --val-split 0.1" 1
  STDERR "^ctrain: search: --out '/proc/ctrain-search': cannot make /proc/ctrain-search")
ctrain_cli_test(cli_search_resume_missing "search --resume-search ${SD}/never" 1
  STDERR "^ctrain: search: .*never/search.json: No such file")

# Real searches on part of MNIST (search_check.py says what each checks).
find_program(CTRAIN_TOOLING_PYTHON python3)
if(CTRAIN_TOOLING_PYTHON AND EXISTS "${PROJECT_SOURCE_DIR}/../shared/data/mnist")
  foreach(case random halving failing resume)
    add_test(NAME cli_search_${case} COMMAND ${CTRAIN_TOOLING_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/search_check.py
      $<TARGET_FILE:ctrain> ${CMAKE_CURRENT_BINARY_DIR}/searchout ${case})
  endforeach()
endif()

# Transfer learning: --init-from with --reset-head and --freeze on a 5-class
# task made from MNIST (transfer_check.py says what it checks).
if(CTRAIN_TOOLING_PYTHON AND EXISTS "${PROJECT_SOURCE_DIR}/../shared/data/mnist")
  add_test(NAME cli_train_transfer COMMAND ${CTRAIN_TOOLING_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/transfer_check.py
    $<TARGET_FILE:ctrain> ${PROJECT_SOURCE_DIR}/../shared/data/mnist ${CMAKE_CURRENT_BINARY_DIR}/transferout)
endif()
ctrain_cli_test(cli_train_reset_head_alone "train --reset-head --epochs 1" 2
  STDERR "^ctrain: train: --reset-head is for --init-from")
ctrain_cli_test(cli_train_freeze_unknown "train --data-dir ${TD}/good --freeze nothing. --epochs 1" 1
  STDERR "^ctrain: train: --freeze: no parameter's name starts with 'nothing.'" REQUIRES td)

# ctrain predict: probabilities against a reference computed from the
# checkpoint's tensors, bad input, IDX against eval, a GPT's next token
# (predict_check.py says what it checks).
if(CTRAIN_TOOLING_PYTHON)
  set(_mnist "")
  if(EXISTS "${PROJECT_SOURCE_DIR}/../shared/data/mnist")
    set(_mnist ${PROJECT_SOURCE_DIR}/../shared/data/mnist)
  endif()
  add_test(NAME cli_predict COMMAND ${CTRAIN_TOOLING_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/predict_check.py
    $<TARGET_FILE:ctrain> ${CMAKE_CURRENT_BINARY_DIR}/predictout ${_mnist})
endif()
ctrain_cli_test(cli_predict_no_input "predict --checkpoint x.safetensors --out p.csv" 2
  STDERR "^ctrain: predict: --input FILE is required")
ctrain_cli_test(cli_predict_bad_format "predict --checkpoint x --input y --out z --format png" 2
  STDERR "^ctrain: predict: --format")
