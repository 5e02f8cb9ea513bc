#!/usr/bin/python3
"""tapegrad fit against scikit-learn's MLPs on the CSV data sets Debian's python3-sklearn
ships: one hidden layer of 32 ReLU units, Adam (learning rate 0.001), batch 32, 200
epochs, the same 80/20 split (the rows shuffled once with a fixed seed, the last 20% held
out) and the same standardisation (statistics of the training 80%).

    tools/compare_sklearn.py build/tapegrad

Prints, per data set, tapegrad's validation score (R2 or accuracy) beside scikit-learn's."""
import csv, os, subprocess, sys, tempfile, warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler

DATA = "/usr/lib/python3/dist-packages/sklearn/datasets/data"
SETS = [("boston_house_prices.csv", True, 2), ("breast_cancer.csv", False, 1), ("wine_data.csv", False, 1)]


def load(name, skip):
    with open(os.path.join(DATA, name)) as f:
        rows = list(csv.reader(f))[skip:]
    return np.array([[float(v) for v in r] for r in rows])


def main():
    tapegrad = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/tapegrad")
    warnings.simplefilter("ignore", ConvergenceWarning)
    work = tempfile.mkdtemp(prefix="tapegrad_sklearn_")
    for name, regression, skip in SETS:
        a = load(name, skip)
        a = a[np.random.default_rng(0).permutation(len(a))]
        path = os.path.join(work, name)
        cols = ",".join("f%d" % i for i in range(a.shape[1] - 1))
        np.savetxt(path, a, delimiter=",", header=cols + ",y", comments="", fmt="%.17g")
        subprocess.run([tapegrad, "fit", "--data", "csv:" + path, "--label", "y", "--model", "mlp:32", "--epochs",
                        "200", "--batch-size", "32", "--validation-split", "0.2", "--normalize", "--quiet"]
                       + (["--loss", "mse"] if regression else []) + ["--save", path + ".safetensors", "--history",
                       path + ".history.csv", "--plot", path + ".svg"], check=True, cwd=work)
        with open(path + ".history.csv") as f:
            last = list(csv.DictReader(f))[-1]
        ours = float(last["val_r2_score" if regression else "val_accuracy"])
        n = int(len(a) * 0.8)
        x, y = a[:, :-1], a[:, -1]
        scaler = StandardScaler().fit(x[:n])
        kind = MLPRegressor if regression else MLPClassifier
        model = kind(hidden_layer_sizes=(32,), solver="adam", learning_rate_init=0.001, batch_size=32,
                     max_iter=200, n_iter_no_change=200, random_state=0)
        model.fit(scaler.transform(x[:n]), y[:n] if regression else y[:n].astype(int))
        p = model.predict(scaler.transform(x[n:]))
        theirs = r2_score(y[n:], p) if regression else accuracy_score(y[n:].astype(int), p)
        print("%-24s %-9s tapegrad %.4f   scikit-learn %.4f" % (name, "R2" if regression else "accuracy", ours,
                                                                  theirs))


if __name__ == "__main__":
    main()
