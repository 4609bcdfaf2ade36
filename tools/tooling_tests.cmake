# `ctrain plot` (docs/tooling.md): images that decode with the right size
# and are not blank, PNG and SVG, one and several runs, a real run's
# metrics; bad input: one line each, the exit code, no image lost. And the
# command line of `ctrain train --tensorboard` (its files are checked by
# tests/tensorboard_check.py). Included from tools/CMakeLists.txt inside
# if(CTRAIN_TESTS).
set(PD ${CMAKE_CURRENT_BINARY_DIR}/plotdata)
file(MAKE_DIRECTORY ${PD})
# Two runs' metrics as `ctrain train --metrics --eval-every 10 --val-split`
# writes them: eval lines, epoch lines (no validation), the final line.
function(_ct_metrics_file path scale)
  set(text "")
  foreach(i RANGE 1 12)
    math(EXPR step "${i} * 10")
    math(EXPR epoch "(${step} - 1) / 40 + 1")
    math(EXPR tl "2300 * ${scale} / (${i} + 2)")
    math(EXPR vl "2000 * ${scale} / (${i} + 3) + 60")
    math(EXPR va "9800 - 1000 * ${scale} / ${i}")
    string(APPEND text "{\"event\":\"eval\",\"epoch\":${epoch},\"step\":${step},\"train_loss\":${tl}e-4,\"val_loss\":${vl}e-4,\"val_acc\":${va}e-4,\"test_loss\":null,\"test_acc\":null,\"lr\":${i}e-3,\"samples_per_s\":1000,\"elapsed_s\":${i},\"loss_scale\":1,\"skipped_steps\":0}\n")
    if(step EQUAL 40 OR step EQUAL 80 OR step EQUAL 120)
      string(APPEND text "{\"event\":\"epoch\",\"epoch\":${epoch},\"step\":${step},\"train_loss\":${tl}e-4,\"val_loss\":null,\"val_acc\":null,\"test_loss\":null,\"test_acc\":null,\"lr\":${i}e-3,\"samples_per_s\":1000,\"elapsed_s\":${i},\"loss_scale\":1,\"skipped_steps\":0}\n")
    endif()
  endforeach()
  string(APPEND text "{\"event\":\"test\",\"epoch\":3,\"step\":120,\"train_loss\":${tl}e-4,\"val_loss\":${vl}e-4,\"val_acc\":${va}e-4,\"test_loss\":${vl}e-4,\"test_acc\":0.95,\"lr\":0.0012,\"samples_per_s\":1000,\"elapsed_s\":12,\"loss_scale\":1,\"skipped_steps\":0}\n")
  file(WRITE ${path} "${text}")
endfunction()
_ct_metrics_file(${PD}/adam.jsonl 3)
_ct_metrics_file(${PD}/sgd.jsonl 4)
file(WRITE ${PD}/lm.jsonl "{\"event\":\"eval\",\"epoch\":1,\"step\":10,\"train_loss\":3.1,\"val_loss\":2.9,\"lr\":0.001,\"samples_per_s\":50,\"tokens_per_s\":800,\"elapsed_s\":1,\"loss_scale\":1,\"skipped_steps\":0}\n")
file(WRITE ${PD}/broken.jsonl "{\"event\":\"eval\",\"step\":10,\"train_loss\":1.0}\n{\"event\": \n")
file(WRITE ${PD}/empty.jsonl "")

if(CT_CAIRO_FOUND)
  add_executable(png_check ${CMAKE_CURRENT_SOURCE_DIR}/testdata/png_check.c)
  target_link_libraries(png_check PRIVATE PkgConfig::CT_CAIRO)
  function(ctrain_plot_test name args out w h)
    add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:ctrain> "-DARGS=${args}" -DOUT=${out}
      -DCHECK=$<TARGET_FILE:png_check> -DWIDTH=${w} -DHEIGHT=${h} -P ${CMAKE_CURRENT_SOURCE_DIR}/plot_check.cmake)
    set_tests_properties(${name} PROPERTIES ${ARGN})
  endfunction()
  ctrain_plot_test(cli_plot_png "plot ${PD}/adam.jsonl -o ${PD}/one.png" ${PD}/one.png 1200 600 LABELS plot)
  ctrain_plot_test(cli_plot_two_runs_log
    "plot ${PD}/adam.jsonl ${PD}/sgd.jsonl -o ${PD}/two.png --log-y --y train_loss,val_loss,val_acc,lr --width 900 --height 700"
    ${PD}/two.png 900 700 LABELS plot)
  ctrain_plot_test(cli_plot_epoch "plot ${PD}/adam.jsonl ${PD}/sgd.jsonl -o ${PD}/epoch.png --x epoch --width 640 --height 400"
    ${PD}/epoch.png 640 400 LABELS plot)
  add_test(NAME cli_plot_svg COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:ctrain>
    "-DARGS=plot ${PD}/adam.jsonl ${PD}/sgd.jsonl -o ${PD}/two.svg" -DOUT=${PD}/two.svg -DWIDTH=1200 -DHEIGHT=600
    -P ${CMAKE_CURRENT_SOURCE_DIR}/plot_check.cmake)
  # A real run: train with --metrics, then plot it.
  ctrain_cli_test(cli_plot_real_train
    "train --data-dir ${TD}/good --hidden 16 --epochs 3 --batch-size 16 --optim sgd --lr 0.05 --val-split 0.2 --eval-every 5 --clip-norm 5 --metrics ${PD}/real.jsonl --quiet"
    0 STDOUT "test accuracy" REQUIRES td SETUP plot_real)
  ctrain_plot_test(cli_plot_real "plot ${PD}/real.jsonl -o ${PD}/real.png --y train_loss,val_loss,val_acc,grad_norm"
    ${PD}/real.png 1200 600 FIXTURES_REQUIRED plot_real)
  # A failing plot leaves the image that was there, and no temporary file.
  add_test(NAME cli_plot_keeps_image COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:ctrain>
    "-DARGS=plot ${PD}/adam.jsonl ${PD}/lm.jsonl -o ${PD}/kept.png --y val_acc" -DOUT=${PD}/kept.png -DKEEP=1 -DRC=1
    -P ${CMAKE_CURRENT_SOURCE_DIR}/plot_check.cmake)
  # Bad input: one line naming the file, metric or flag.
  ctrain_cli_test(cli_plot_missing_file "plot ${PD}/nope.jsonl -o ${PD}/x.png" 1
    STDERR "^ctrain: plot: cannot read '.*/nope.jsonl': No such file or directory")
  ctrain_cli_test(cli_plot_no_such_metric "plot ${PD}/adam.jsonl ${PD}/lm.jsonl -o ${PD}/x.png --y val_loss,val_acc" 1
    STDERR "^ctrain: plot: .*/lm.jsonl has no val_acc values \\(it has train_loss, val_loss, lr, ")
  ctrain_cli_test(cli_plot_unknown_key "plot ${PD}/adam.jsonl -o ${PD}/x.png --y train_loss,accuracy" 2
    STDERR "^ctrain: plot: --y: unknown metric 'accuracy' \\(known: train_loss, ")
  ctrain_cli_test(cli_plot_unwritable "plot ${PD}/adam.jsonl -o ${PD}/no/such/dir/x.png" 1
    STDERR "^ctrain: plot: cannot write '.*/no/such/dir/x.png': No such file or directory")
  ctrain_cli_test(cli_plot_broken_line "plot ${PD}/broken.jsonl -o ${PD}/x.png" 1
    STDERR "^ctrain: plot: .*/broken.jsonl line 2 is not a metrics line")
  ctrain_cli_test(cli_plot_empty_file "plot ${PD}/empty.jsonl -o ${PD}/x.png" 1
    STDERR "^ctrain: plot: .*/empty.jsonl holds no metrics lines")
  ctrain_cli_test(cli_plot_bad_extension "plot ${PD}/adam.jsonl -o ${PD}/x.jpg" 2
    STDERR "^ctrain: plot: -o .*/x.jpg: the name must end in .png or .svg")
  ctrain_cli_test(cli_plot_no_out "plot ${PD}/adam.jsonl" 2 STDERR "^ctrain: plot: -o FILE.png or FILE.svg is required")
  ctrain_cli_test(cli_plot_no_file "plot -o ${PD}/x.png" 2 STDERR "^ctrain: plot: no metrics file given")
  ctrain_cli_test(cli_plot_bad_x "plot ${PD}/adam.jsonl -o ${PD}/x.png --x time" 2
    STDERR "^ctrain: plot: --x wants one of step, epoch, not 'time'")
  ctrain_cli_test(cli_plot_bad_size "plot ${PD}/adam.jsonl -o ${PD}/x.png --width 10" 2
    STDERR "^ctrain: plot: --width wants an integer from 200")
else()
  ctrain_cli_test(cli_plot_without_cairo "plot ${PD}/adam.jsonl -o ${PD}/x.png" 1
    STDERR "^ctrain: plot: this ctrain was built without cairo")
endif()

# --tensorboard: a path that cannot be a directory fails before training;
# histograms without it are a usage error; the flags are recorded for --resume.
file(WRITE ${PD}/not_a_dir "x")
ctrain_cli_test(cli_train_tensorboard_not_dir
  "train --data-dir ${TD}/good --hidden 16 --epochs 1 --batch-size 16 --tensorboard ${PD}/not_a_dir/runs --quiet" 1
  STDERR "^ctrain: train: .*cannot use '.*/not_a_dir' as the TensorBoard directory: it is not a directory" REQUIRES td)
ctrain_cli_test(cli_train_tensorboard_histograms_alone "train --tensorboard-histograms 2" 2
  STDERR "^ctrain: train: --tensorboard-histograms needs --tensorboard DIR")
ctrain_cli_test(cli_train_tensorboard_histograms_zero "train --tensorboard ${PD}/tb --tensorboard-histograms 0" 2
  STDERR "^ctrain: train: --tensorboard-histograms wants an integer from 1")
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
