# Bad data given to `ctrain train` and `ctrain eval`: each case once ran to
# exit 0 with a wrong number (a wider model, a dropped row, accuracy 0% and
# loss nan) or failed with a message about something else. Each now ends
# with its exit status and one line naming the file and the place at fault.
# The files are written by ctrain_testdata (testdata/mkdata.c, rejects())
# under ${TD}/rej; included from tools/CMakeLists.txt after TD is set.

set(REJ ${TD}/rej)
set(CSV_TRAIN "train --data csv --train-file")

# ---- labels outside the dataset's classes
ctrain_cli_test(bad_data_idx_label_255 "train --data-dir ${REJ}/label255" 1
  STDERR "^ctrain: train: training set: .*label255/train-labels-idx1-ubyte: record 5 .*label 255; the labels are 0 to 9"
  REQUIRES td)
ctrain_cli_test(bad_data_idx_test_label_12 "train --data-dir ${REJ}/test12" 1
  STDERR "^ctrain: train: test set: .*test12/t10k-labels-idx1-ubyte: record 7 .*label 12" REQUIRES td)
ctrain_cli_test(bad_data_eval_idx_label_12 "eval --checkpoint ${REJ}/ok.safetensors --hidden 8 --data-dir ${REJ}/test12" 1
  STDERR "^ctrain: eval: test set: .*t10k-labels-idx1-ubyte: record 7 .*label 12" REQUIRES td)
ctrain_cli_test(bad_data_eval_label_beyond_model
  "eval --checkpoint ${REJ}/four.safetensors --data-dir ${REJ}/test7" 1
  STDERR "^ctrain: eval: .*test7: record 7 has label 7, but the model has 4 classes" REQUIRES td)
ctrain_cli_test(bad_data_eval_fewer_classes_ok "eval --checkpoint ${REJ}/four.safetensors --data-dir ${TD}/good"
  0 STDOUT "^accuracy [0-9.]+% \\([0-9]+/32\\)" REQUIRES td)
ctrain_cli_test(bad_data_csv_test_label_beyond_train
  "${CSV_TRAIN} ${REJ}/train4.csv --test-file ${REJ}/test12.csv" 1
  STDERR "^ctrain: train: --test-file: .*test12.csv: line 3, column 3 \\(row 2\\): label 12 is not below 4.*--num-classes"
  REQUIRES td)
ctrain_cli_test(bad_data_csv_num_classes "${CSV_TRAIN} ${REJ}/train4.csv --num-classes 3" 1
  STDERR "^ctrain: train: --train-file: .*train4.csv: line 5, column 3 \\(row 4\\): label 3 is not below 3" REQUIRES td)
ctrain_cli_test(bad_data_csv_label_2e9 "${CSV_TRAIN} ${REJ}/label2e9.csv" 1
  STDERR "^ctrain: train: --train-file: .*label2e9.csv: line 3, column 3 \\(row 2\\): label 2e9 is too large" REQUIRES td)

# ---- CSV numbers
ctrain_cli_test(bad_data_csv_float_overflow "${CSV_TRAIN} ${REJ}/float1e39.csv" 1
  STDERR "^ctrain: train: --train-file: .*float1e39.csv: line 3, column 2: '1e39' is beyond the float range" REQUIRES td)
ctrain_cli_test(bad_data_csv_40_digits "${CSV_TRAIN} ${REJ}/digits40.csv" 1
  STDERR "^ctrain: train: --train-file: .*digits40.csv: line 3, column 1: .* is beyond the float range" REQUIRES td)
ctrain_cli_test(bad_data_csv_nan_first_row "${CSV_TRAIN} ${REJ}/nan_first.csv" 1
  STDERR "^ctrain: train: --train-file: .*nan_first.csv: line 1, column 2: 'nan' is not a finite number" REQUIRES td)
ctrain_cli_test(bad_data_csv_empty_first_row "${CSV_TRAIN} ${REJ}/empty_first.csv" 1
  STDERR "^ctrain: train: --train-file: .*empty_first.csv: line 1, column 2: empty field" REQUIRES td)
ctrain_cli_test(bad_data_csv_dots_first_row "${CSV_TRAIN} ${REJ}/dots_first.csv" 1
  STDERR "^ctrain: train: --train-file: .*dots_first.csv: line 1, column 2: '2.5.1' is not a finite number" REQUIRES td)
ctrain_cli_test(bad_data_csv_hex "${CSV_TRAIN} ${REJ}/hex.csv" 1
  STDERR "^ctrain: train: --train-file: .*hex.csv: line 2, column 2: '0x2' is hexadecimal" REQUIRES td)
ctrain_cli_test(bad_data_csv_nul "${CSV_TRAIN} ${REJ}/nul.csv" 1
  STDERR "^ctrain: train: --train-file: .*nul.csv: line 2, column 2: a NUL byte" REQUIRES td)
# Without zlib a gzipped file is refused as such, before its end is seen.
if(ZLIB_FOUND)
ctrain_cli_test(bad_data_gzip_trailing "${CSV_TRAIN} ${REJ}/trailing.csv.gz" 1
  STDERR "^ctrain: train: --train-file: .*trailing.csv.gz: 7 bytes of trailing garbage after the gzip stream" REQUIRES td)
ctrain_cli_test(bad_data_gzip_clean_ok "${CSV_TRAIN} ${REJ}/gz_ok.csv.gz --epochs 1 --batch-size 2 --hidden 4 --quiet" 0
  STDOUT "training loss [0-9.]+" REQUIRES td)
endif()

# ---- IDX sizes
ctrain_cli_test(bad_data_idx_size_wraps "train --data-dir ${REJ}/wrap" 1
  STDERR "^ctrain: train: training set: .*wrap/train-images-idx3-ubyte: IDX dimension 2 \\(2147483648\\)" REQUIRES td)

# ---- eval: a non-finite result is an error that says why
ctrain_cli_test(bad_data_eval_nan_weights "eval --checkpoint ${REJ}/nan.safetensors --hidden 8 --data-dir ${TD}/good" 1
  STDERR "^ctrain: eval: .*nan.safetensors': the weights hold NaN in tensor 'fc1.weight' \\(element 17\\)" REQUIRES td)
ctrain_cli_test(bad_data_eval_inf_weights "eval --checkpoint ${REJ}/inf.safetensors --hidden 8 --data-dir ${TD}/good" 1
  STDERR "^ctrain: eval: .*inf.safetensors': the weights hold inf in tensor 'fc1.weight' \\(element 3\\)" REQUIRES td)
ctrain_cli_test(bad_data_eval_loss_overflow "eval --checkpoint ${REJ}/huge.safetensors --hidden 8 --data-dir ${TD}/good" 1
  STDERR "^ctrain: eval: the loss is not finite .*huge.safetensors" REQUIRES td)
ctrain_cli_test(bad_data_eval_norm_std_tiny
  "eval --checkpoint ${REJ}/norm_tiny.safetensors --hidden 8 --data-dir ${TD}/good" 1
  STDERR "^ctrain: eval: the normalisation makes feature [0-9]+ of record [0-9]+ of .*good .*std\\[0\\] = .* is degenerate"
  REQUIRES td)
ctrain_cli_test(bad_data_eval_norm_std_zero
  "eval --checkpoint ${REJ}/norm_zero.safetensors --hidden 8 --data-dir ${TD}/good" 1
  STDERR "^ctrain: eval: .*norm_zero.safetensors': its normalisation record \\(metadata cli.normalize\\) is degenerate: std\\[0\\] is 0"
  REQUIRES td)
ctrain_cli_test(bad_data_eval_norm_mean_inf
  "eval --checkpoint ${REJ}/norm_big.safetensors --hidden 8 --data-dir ${TD}/good" 1
  STDERR "^ctrain: eval: .*norm_big.safetensors': its normalisation record .* is degenerate: mean\\[0\\] is inf"
  REQUIRES td)

# ---- data flags the dataset does not take: refused, not ignored
ctrain_cli_test(bad_data_flag_label_column_mnist "train --label-column 2" 2
  STDERR "^ctrain: train: --label-column is for --data csv, not mnist")
ctrain_cli_test(bad_data_flag_num_classes_mnist "train --num-classes 10" 2
  STDERR "^ctrain: train: --num-classes is for --data csv, not mnist")
ctrain_cli_test(bad_data_flag_test_file_mnist "train --test-file ${TD}/good.csv" 2
  STDERR "^ctrain: train: --test-file is for --data csv, not mnist")
ctrain_cli_test(bad_data_flag_data_dir_csv "${CSV_TRAIN} ${TD}/good.csv --data-dir ${TD}/good" 2
  STDERR "^ctrain: train: --data-dir is for --data mnist, fashion-mnist or cifar10, not csv")
ctrain_cli_test(bad_data_flag_data_dir_text "train --data text --train-file ${TD}/good.csv --data-dir ${TD}/good" 2
  STDERR "^ctrain: train: --data-dir is for --data mnist, fashion-mnist or cifar10, not text")
ctrain_cli_test(bad_data_flag_eval_label_column "eval --checkpoint ${REJ}/ok.safetensors --label-column 1" 2
  STDERR "^ctrain: eval: --label-column is for --data csv, not mnist" REQUIRES td)
ctrain_cli_test(bad_data_flag_eval_data_dir_csv
  "eval --checkpoint ${REJ}/ok.safetensors --data csv --test-file ${TD}/good.csv --data-dir ${TD}/good" 2
  STDERR "^ctrain: eval: --data-dir is for --data mnist, fashion-mnist or cifar10, not csv" REQUIRES td)
