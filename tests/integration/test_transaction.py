raise SystemExit('placeholder: being written')
