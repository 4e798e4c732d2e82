// cgm-ray's worker around the real oref0 determine-basal (npm oref0, MIT).
// Protocol: one JSON line in = one batch {"decisions": [{glucose_status, currenttemp, iob_data,
// profile, autosens, meal_data, microBolusAllowed, currentTime (ms)}, ...]};
// one JSON line out = {"results": [rT or {"error": message}, ...]}.
// Or {"iob": [{history, profile, clock, autosens}, ...]} (lib/iob's inputs) answered by
// {"results": [{iob: [48], activity: [48], zt_iob: [48], zt_activity: [48]}, ...]}.
// The first line written is {"ready": true, "oref0": version} or {"fatal": message}.
'use strict';

var readline = require('readline');

function fatal(message) {
    process.stdout.write(JSON.stringify({fatal: message}) + '\n');
    process.exit(1);
}

var determineBasal, tempBasalFunctions, generateIob, version;
try {
    determineBasal = require('oref0/lib/determine-basal/determine-basal');
    generateIob = require('oref0/lib/iob');
    tempBasalFunctions = require('oref0/lib/basal-set-temp');
    version = require('oref0/package.json').version;
} catch (e) {
    fatal('cannot load the oref0 npm package (' + e.message + '); run `make node-deps`');
}

// determine-basal narrates to stderr; nobody reads it here, and writing it costs time.
console.error = function () {};
process.stderr.write = function () { return true; };

function decide(d) {
    // determine-basal writes into some of its inputs (rT, iob_data[0]): give it copies.
    var iobData = d.iob_data.map(function (tick) { return Object.assign({}, tick); });
    return determineBasal(Object.assign({}, d.glucose_status), Object.assign({}, d.currenttemp), iobData,
        d.profile, d.autosens, Object.assign({}, d.meal_data), tempBasalFunctions, d.microBolusAllowed,
        null, new Date(d.currentTime));
}

function iobTicks(inputs) {
    var ticks = generateIob(inputs, false);
    return {
        iob: ticks.map(function (t) { return t.iob; }),
        activity: ticks.map(function (t) { return t.activity; }),
        zt_iob: ticks.map(function (t) { return t.iobWithZeroTemp.iob; }),
        zt_activity: ticks.map(function (t) { return t.iobWithZeroTemp.activity; })
    };
}

function guarded(fn) {
    return function (item) {
        try {
            return fn(item);
        } catch (e) {
            return {error: String(e && e.stack || e)};
        }
    };
}

process.stdout.write(JSON.stringify({ready: true, oref0: version}) + '\n');

var lines = readline.createInterface({input: process.stdin, terminal: false});
lines.on('line', function (line) {
    var reply;
    try {
        var batch = JSON.parse(line);
        reply = {results: batch.iob ? batch.iob.map(guarded(iobTicks)) : batch.decisions.map(guarded(decide))};
    } catch (e) {
        reply = {fatal: 'bad request: ' + e.message};
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
});
lines.on('close', function () { process.exit(0); });
