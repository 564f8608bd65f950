# The daemon's flags (paths and ports are the harness's, so left out).
.columns context,degree,e,attach,force,level,msa,namespace,nostdin,recover,version,broadcast args
.headers false .columns hostname args
