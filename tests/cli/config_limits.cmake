# Issue 14: config values that pass a naive check but cannot work are refused
# at once, exit code 2 with the key named, before anything is allocated or a
# dataset is opened (/nonexistent would be exit 1 otherwise). Included from
# CMakeLists.txt (LR and longrec_cli_test come from there).
set(_train ${LR} train --dataset /nonexistent)
longrec_cli_test(limits_dim_1e9 EXIT 2 REGEX "config key 'model.dim': got 1000000000, expected a value in \\[1, 65536\\]"
  COMMAND ${_train} --model.dim=1e9)
longrec_cli_test(limits_dim_100000 EXIT 2 REGEX "config key 'model.dim': got 100000, expected a value in \\[1, 65536\\]"
  COMMAND ${_train} --model.dim=100000)
longrec_cli_test(limits_dim_overflows_int EXIT 2 REGEX "config key 'model.dim': got '3000000000' on the command line, expected an integer in \\[-2147483648, 2147483647\\]"
  COMMAND ${_train} --model.dim=3000000000)
longrec_cli_test(limits_num_negatives_1e9 EXIT 2 REGEX "config key 'model.num_negatives': got 1000000000, expected a value in \\[0, 1048576\\]"
  COMMAND ${_train} --model.num_negatives=1e9)
longrec_cli_test(limits_time_buckets_1e9 EXIT 2 REGEX "config key 'model.time_buckets': got 1000000000, expected a value in \\[1, 4096\\]"
  COMMAND ${_train} --model.time_buckets=1e9)
longrec_cli_test(limits_max_len_1e9 EXIT 2 REGEX "config key 'model.max_len': got 1000000000, expected a value in \\[1, 1048576\\]"
  COMMAND ${_train} --model.max_len=1e9)
longrec_cli_test(limits_heads_1000000 EXIT 2 REGEX "config key 'model.heads': got 1000000, expected a value in \\[1, 1024\\]"
  COMMAND ${_train} --model.heads=1000000)
longrec_cli_test(limits_threads_100000 EXIT 2 REGEX "config key 'train.threads': got 100000, expected a value in \\[0, 1024\\]"
  COMMAND ${_train} --train.threads=100000)
longrec_cli_test(limits_lr_nan EXIT 2 REGEX "config key 'train.lr': got nan, expected a finite value in \\[0, 10\\]"
  COMMAND ${_train} --train.lr=nan)
longrec_cli_test(limits_temperature_inf EXIT 2 REGEX "config key 'model.temperature': got inf, expected a finite value"
  COMMAND ${_train} --model.temperature=inf)
longrec_cli_test(limits_seed_does_not_wrap EXIT 2 REGEX "config key 'data.seed': got '-1' on the command line, expected a non-negative integer"
  COMMAND ${_train} --data.seed=-1)
longrec_cli_test(limits_config_is_a_directory EXIT 2 REGEX "config key 'config': '/tmp' is a directory, expected an INI file"
  COMMAND ${_train} --config /tmp)
longrec_cli_test(limits_positional_argument EXIT 2 REGEX "unexpected argument 'foo': `longrec train` takes no positional arguments"
  COMMAND ${_train} foo)
longrec_cli_test(limits_size_and_dim_conflict EXIT 2 REGEX "config key 'model.size': 'hstu-d64-l2-h1' sets model.dim = 64, but model.dim = 128 is given \\(command line\\)"
  COMMAND ${_train} --model.size=hstu-d64-l2-h1 --model.dim=128)
# Each key within bounds, the step far beyond any machine: refused by the keys that drive it.
longrec_cli_test(limits_step_memory_negatives EXIT 2 REGEX "config key 'model.num_negatives': a training step needs an estimated [0-9.]+ TiB but this machine has .*sampled-softmax logits .*model.num_negatives=1000000 x data.batch_size=128 x data.max_len=200"
  COMMAND ${_train} --model.num_negatives=1000000)
longrec_cli_test(limits_step_memory_window EXIT 2 REGEX "config key 'data.max_len': a training step needs an estimated .*attention scores"
  COMMAND ${_train} --model.max_len=65536 --data.max_len=65536)
set_tests_properties(cli.limits_threads_100000 cli.limits_step_memory_negatives PROPERTIES TIMEOUT 30)
